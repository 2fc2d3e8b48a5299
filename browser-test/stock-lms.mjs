#!/usr/bin/env node
// The stock-LMS browser test: the real ltigate binary in front of a Django LMS
// with stock Open edX behaviour (tests/stock_lms, with the LMS-side app
// deploy/openedx installed), launched from a test LTI platform that signs real
// JWTs (browser-test/platform.mjs), driven by headless Chromium (Debian's
// `chromium`, through playwright-core, which never downloads a browser).
//
// Everything runs on 127.0.0.1, on free ports:
//
//   https://lti.lms.test:G   ltigate (TLS with a test CA made at run time), the
//                            [[rules]] of the shipped gateway.toml, embedded store
//   127.0.0.1:S              ltigate's internal score API ([grades] listen)
//   http://127.0.0.1:L       the stock LMS over plain HTTP: ltigate's upstream,
//                            like Tutor's lms:8000 behind Caddy
//   https://lms.test:LS      the same LMS (same database) over TLS, for the
//                            browser's direct visits
//   http://127.0.0.1:P       the test platform (course page, OIDC auth, JWKS,
//                            OAuth2 token, the line item's scores)
//   http://127.0.0.1:J       ltigate's public JWK, over plain HTTP, for the LMS
//   http://127.0.0.1:X       a page of another origin, for the cross-origin POST
//
// Chromium maps lms.test and lti.lms.test to 127.0.0.1 (--host-resolver-rules),
// trusts exactly the test certificate's key, and allows third-party cookies
// as Chrome does by default. The steps:
//
//   0. a direct LMS login as direct_learner in a top-level page (before any
//      launch): the LMS sets sessionid on the parent domain lms.test, which the
//      browser also sends to lti.lms.test;
//   1. Launch on the platform page ends, in its iframe, on ltigate's origin at
//      the unit's display path, showing the unit;
//   2. the unit renders for a learner the LMS never saw (the LMS app creates and
//      enrolls them): #ltigate-user is ltigate's username for the launch;
//   3. the unit's own buttons POST to the problem handler (X-CSRFToken from the
//      csrftoken cookie) and to /event through the gate: both answer 200;
//   4. the unit's composite score reaches the platform's scores endpoint
//      (scoreGiven/scoreMaximum = earned/possible = 2/2 -> 1/1);
//   5. the locked course asset (img#locked-asset) loads;
//   6. a cross-origin POST of a wrong answer to the problem handler, from a
//      page of another origin (a form posted into an iframe, and a credentialed
//      fetch), carrying the learner's session (ltigate's access log says so),
//      is refused and changes no score;
//   8. the direct LMS login survives the launch and the problem submit;
//   9. the gated link (the LMS redirects to /xblock/<gated_seq>) ends on a page
//      that is not ltigate's refusal;
//  10. the jump link (jump_to_id redirects to the MFE, another host) ends on
//      ltigate's refusal page;
//   7. (last, since the LMS logs that session out) the LMS session ltigate gave
//      the browser, sent to the LMS directly without an assertion, gets 401.
//
// A failed step does not stop the others; a step that needs a failed one
// fails as "not run". The last line is `stock-lms browser test: N passed, N
// failed`; the exit code is 0 only when every step passed.
//
// Artifacts and logs in target/browser-test/stock-lms/: *.log of every process,
// ltigate.toml, platform.json (what the platform received), cookies.json
// (names and attributes, no values), unit.png, gated.png, jump.png, and
// failure-<step>.png for each failed step.
//
// Environment: LTIGATE_BIN (default target/debug/ltigate), STOCK_LMS_PYTHON
// (default target/stock-lms-venv/bin/python: a venv with
// `pip install -r tests/stock_lms/requirements.txt ./deploy/openedx`, as
// .ci/run makes), CHROMIUM (default /usr/bin/chromium), BROWSER_TEST_OUT,
// LTIGATE_LOG, CHROMIUM_EXTRA_ARGS, STOCK_LMS_TEST_TIMEOUT_MS (the whole run).

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

import {
  CHROMIUM, Failure, ROOT, Service, TARGET_DIR, TestRun,
  assert, assertChromium, freePort, launchChromium, sleep, spkiHash, tail, toolFrameText,
} from './harness.mjs';
import { rsaKey, startPlatform } from './platform.mjs';

const OUT = process.env.BROWSER_TEST_OUT ?? path.join(TARGET_DIR, 'browser-test', 'stock-lms');
const LTIGATE_BIN = process.env.LTIGATE_BIN ?? path.join(TARGET_DIR, 'debug', 'ltigate');
const PYTHON = process.env.STOCK_LMS_PYTHON ?? path.join(TARGET_DIR, 'stock-lms-venv', 'bin', 'python');
const STOCK_LMS = path.join(ROOT, 'tests', 'stock_lms');

const LMS_HOST = 'lms.test';
const GATEWAY_HOST = 'lti.lms.test';
const COURSE = 'course-v1:StockX+LMS101+2026';
const UNIT = 'block-v1:StockX+LMS101+2026+type@vertical+block@unit1';
const GATED_SEQ = 'block-v1:StockX+LMS101+2026+type@sequential+block@gated_seq';
const DIRECT_USER = 'direct_learner';
const DIRECT_PASSWORD = 'direct-password';
const TOOL_KID = 'stock-lms-tool-1';
// Test-only secrets, made up for this run's throwaway gateway and LMS.
const USERNAME_KEY = `stock-lms-test-${randomBytes(12).toString('hex')}`;
const SCORE_API_TOKEN = `stock-lms-scores-${randomBytes(12).toString('hex')}`;

const STARTUP_TIMEOUT_MS = 90_000;
const STEP_TIMEOUT_MS = 20_000;
const SCORE_TIMEOUT_MS = 30_000;
/** How long the score stream must stay unchanged to count as settled. */
const SCORES_QUIET_MS = 4_000;
const TOTAL_TIMEOUT_MS = Number(process.env.STOCK_LMS_TEST_TIMEOUT_MS ?? 420_000);

const test = new TestRun({ name: 'stock-lms', summary: 'stock-lms browser test', clock: true });
const { log } = test;

/** A step that could not run because one it needs failed. */
class NotRun extends Failure {}

function requires(value, what) {
  if (!value) throw new NotRun(`not run: ${what}`);
  return value;
}

/** Polls `probe` until it returns a truthy value; throws `what` after `timeoutMs`. */
async function waitFor(what, probe, timeoutMs, { every = 250, alive = () => {} } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    alive();
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Failure(`${what} within ${timeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(every);
  }
}

// ------------------------------------------------------------------ processes

const logFile = (name) => path.join(OUT, `${name}.log`);

/** Runs a command to completion, its output in OUT/<name>.log; throws on failure. */
function run(name, cmd, args, { env = {}, cwd = ROOT, timeoutMs = 120_000 } = {}) {
  const file = logFile(name);
  return new Promise((resolve, reject) => {
    const out = createWriteStream(file);
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk) => {
      output += chunk;
      out.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Failure(`cannot run ${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      out.end();
      if (code === 0) resolve(output);
      else reject(new Failure(`${name} (${path.basename(cmd)} ${args.join(' ')}) failed (code ${code}, signal ${signal}); last lines of ${path.relative(ROOT, file)}:\n${tail(file)}`));
    });
  });
}

// ---------------------------------------------------------------- HTTP client

/** Resolves the test host names to loopback, as Chromium's resolver rules do. */
function lookup(hostname, options, callback) {
  if (hostname === LMS_HOST || hostname === GATEWAY_HOST) {
    return options.all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4);
  }
  return dns.lookup(hostname, options, callback);
}

/** One HTTP(S) request; TLS is verified against the test CA. */
function fetchRaw(url, { method = 'GET', headers = {}, body, ca, timeoutMs = 10_000 } = {}) {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      u,
      { method, headers, lookup, ca, timeout: timeoutMs, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// ------------------------------------------------------------- certificates

// A test CA and a server certificate for lti.lms.test and lms.test, made with
// the `cryptography` package of the stock LMS's venv (PyJWT[crypto] needs it,
// so it is always there; openssl may not be). Keys stay in the scratch
// directory, which is deleted at the end.
const CERT_SCRIPT = `
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

out, hosts = sys.argv[1], sys.argv[2:]
now = datetime.datetime.now(datetime.timezone.utc)
def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
def write(name, data):
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)

ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ltigate stock-LMS test CA")])
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                   data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                   crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
write("cert.pem", cert.public_bytes(serialization.Encoding.PEM))
write("key.pem", pem_key(key))
`;

// ------------------------------------------------------------------- config

/** The shipped gateway.toml from its first `[[rules]]` line on: the rules under test. */
function shippedRules() {
  const file = path.join(ROOT, 'gateway.toml');
  const text = readFileSync(file, 'utf8');
  const lines = text.split(/(?<=\n)/);
  let offset = 0;
  for (const line of lines) {
    if (line.replace(/\r?\n$/, '') === '[[rules]]') return text.slice(offset);
    offset += line.length;
  }
  throw new Failure(`${file} has no line that is exactly [[rules]]`);
}

const toml = (s) => JSON.stringify(String(s));

function gatewayConfig({ ports, dir, cert, platform }) {
  return `# Written by browser-test/stock-lms.mjs for one run.
[server]
listen = "127.0.0.1:${ports.gateway}"
public_url = "https://${GATEWAY_HOST}:${ports.gateway}"
# The test platform's URLs are plain HTTP on loopback.
allow_http = true
tls_cert = ${toml(cert.cert)}
tls_key = ${toml(cert.key)}
shutdown_grace_sec = 2

[store]
kind = "embedded"
path = ${toml(path.join(dir, 'ltigate.redb'))}

[[keys]]
kid = "${TOOL_KID}"
private_key_file = ${toml(path.join(dir, 'tool-key.pem'))}

[[platforms]]
title = "Stock-LMS test platform"
issuer = ${toml(platform.issuer)}
client_id = ${toml(platform.clientId)}
auth_login_url = ${toml(`${platform.base}/auth`)}
auth_token_url = ${toml(platform.tokenUrl)}
key_set_url = ${toml(`${platform.base}/jwks`)}
key = "${TOOL_KID}"
deployment_ids = [${toml(platform.deploymentId)}]
# The test platform is on loopback.
allow_private_addresses = true

# display_path is left at ltigate's default, the LMS app's chromeless view.
[upstream]
url = "http://127.0.0.1:${ports.lms}"
host = "${LMS_HOST}"
# The stock LMS stand-in serves no Course Blocks API (the subtree gate's tree
# source): the unit's problem is opened as any block of the launched course.
block_access = "course"

[assertion]
audience = "openedx"
username_key = ${toml(USERNAME_KEY)}

# The smallest aggregate delay the config accepts (0), so the unit's composite
# score goes out as soon as the LMS reports the problem's score.
[grades]
listen = "127.0.0.1:${ports.scores}"
token = ${toml(SCORE_API_TOKEN)}
aggregate_delay_sec = 0

${shippedRules()}`;
}

/** ltigate's username for an LTI user (README: "What the LMS must do with the assertion"). */
function expectedUsername(platform) {
  const mac = createHmac('sha256', USERNAME_KEY)
    .update(`${platform.issuer}\0${platform.clientId}\0${platform.sub}`)
    .digest('hex');
  return `lti_${mac.slice(0, 24)}`;
}

// ------------------------------------------------------------------ helpers

/** Whether a page body is ltigate's own refusal page (src/http/pages.rs, src/http/reject.rs). */
function ltigateRefusal(html) {
  const code = /<p class="ref">Reference for your administrator: <code>([^<]*)<\/code>/.exec(html ?? '');
  return code ? { code: code[1], title: /<h1>([^<]*)<\/h1>/.exec(html)?.[1] ?? '' } : null;
}

/** The access-log lines ltigate wrote after byte `offset` for `method` `pathname`. */
function accessLinesSince(logFile, offset, method, pathname) {
  const text = readFileSync(logFile).subarray(offset).toString('utf8');
  return text.split('\n').filter((l) => l.includes('ltigate::access') && l.includes(` method=${method} path=${pathname} `));
}

/** The access-log line ltigate wrote for a request id (its decision). */
function accessLine(logFile, requestId) {
  if (!requestId || !existsSync(logFile)) return null;
  return readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes('ltigate::access') && l.includes(requestId)) ?? null;
}

const cookieSummary = (cookies) => cookies.map(({ value, ...c }) => ({ ...c, valueLength: value.length }));

// --------------------------------------------------------------------- main

async function main() {
  assert(existsSync(LTIGATE_BIN), `no ltigate binary at ${LTIGATE_BIN}: run \`cargo build --bin ltigate\` (or set LTIGATE_BIN)`);
  assert(existsSync(PYTHON), `no Python at ${PYTHON}: make the stock LMS venv (python3 -m venv target/stock-lms-venv && target/stock-lms-venv/bin/pip install -r tests/stock_lms/requirements.txt ./deploy/openedx), or set STOCK_LMS_PYTHON`);
  assert(existsSync(path.join(STOCK_LMS, 'manage.py')), `no stock LMS at ${path.relative(ROOT, STOCK_LMS)}/manage.py`);
  assertChromium();
  mkdirSync(OUT, { recursive: true });
  // The previous run's artifacts (only the kinds this script writes).
  for (const f of readdirSync(OUT)) if (/\.(log|png|json|toml)$/.test(f)) rmSync(path.join(OUT, f), { force: true });

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ltigate-stock-lms-'));
  const certDir = path.join(scratch, 'tls');
  const userDataDir = path.join(scratch, 'chromium-profile');
  mkdirSync(certDir);
  // Third-party cookies allowed, as in Chrome's default settings (Chromium
  // blocks them here otherwise): the LMS session the direct login sets on
  // lms.test then reaches lti.lms.test inside the platform's iframe too,
  // which is the case step 8 is about. ltigate's own cookies are partitioned
  // either way.
  mkdirSync(path.join(userDataDir, 'Default'), { recursive: true });
  writeFileSync(path.join(userDataDir, 'Default', 'Preferences'),
    JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }));
  const ports = {};
  for (const name of ['gateway', 'scores', 'lms', 'lmsTls', 'platform', 'toolJwks', 'other']) ports[name] = await freePort();
  const gateway = `https://${GATEWAY_HOST}:${ports.gateway}`;
  const lmsDirect = `https://${LMS_HOST}:${ports.lmsTls}`;
  const displayUrl = `${gateway}/lti/1p3/launch/${COURSE}/${UNIT}`;
  const otherOrigin = `http://127.0.0.1:${ports.other}`;

  const services = [];
  const servers = [];
  let platform;
  let context;
  let page;
  let current; // the page a failure screenshot shows
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    if (context) await context.close().catch(() => {});
    await Promise.all(services.map((s) => s.stop()));
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()).closeAllConnections?.())));
    if (platform) {
      writeFileSync(path.join(OUT, 'platform.json'), `${JSON.stringify(platform.record, null, 2)}\n`);
      await platform.close();
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  const overall = test.abortOn(TOTAL_TIMEOUT_MS, cleanup, {
    before: () => console.error(`stock-lms: FAIL: the whole test took longer than ${TOTAL_TIMEOUT_MS} ms`),
    after: () => console.log(test.summary(1)),
  });

  // A failed step does not stop the others; one that ran shows where it failed.
  const step = test.stepper({
    keepGoing: true,
    onFailure: async (name, e) => {
      if (e instanceof NotRun) return;
      const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
      const shot = path.join(OUT, `failure-${slug}.png`);
      if (current && !current.isClosed()) {
        await current.screenshot({ path: shot, fullPage: true }).catch(() => {});
        log(`     screenshot: ${path.relative(ROOT, shot)}`);
      }
      const inner = await toolFrameText(page, { limit: 1500 });
      if (inner) log(`     the iframe shows: ${inner.replace(/\n/g, '\n     ')}`);
    },
  });

  try {
    // --- the test certificate
    await run('make-cert', PYTHON, ['-c', CERT_SCRIPT, certDir, GATEWAY_HOST, LMS_HOST], { timeoutMs: 60_000 });
    const cert = { ca: path.join(certDir, 'ca.pem'), cert: path.join(certDir, 'cert.pem'), key: path.join(certDir, 'key.pem') };
    const ca = readFileSync(cert.ca);
    const spki = spkiHash(readFileSync(cert.cert));
    const get = (url, options = {}) => fetchRaw(url, { ca, ...options });

    // --- ltigate's tool key. The LMS verifies assertions against ltigate's
    // JWKS. ltigate serves it only on its public HTTPS origin, whose test
    // certificate Python's requests would not trust (and whose host name it
    // cannot resolve), so the LMS gets the same public key from a tiny JWKS
    // served here over plain HTTP, as Tutor's LMS reads ltigate's JWKS over its
    // internal http://ltigate:8080. The key is made here (ltigate loads it from
    // [[keys]] private_key_file), and the test checks at start that ltigate
    // publishes exactly this key; the platform's token endpoint reads ltigate's
    // real JWKS over HTTPS.
    const toolKey = rsaKey(TOOL_KID);
    writeFileSync(path.join(scratch, 'tool-key.pem'), toolKey.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const toolJwks = { keys: [toolKey.jwk] };
    const jwksServer = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/lti/1p3/pub/jwks/') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(toolJwks));
      } else {
        res.writeHead(404).end();
      }
    });
    servers.push(jwksServer);
    await new Promise((r) => jwksServer.listen(ports.toolJwks, '127.0.0.1', r));

    // --- the platform
    platform = await startPlatform({
      port: ports.platform,
      gateway,
      target: displayUrl,
      toolJwks: async () => {
        const r = await get(`${gateway}/lti/1p3/pub/jwks/`);
        if (r.status !== 200) throw new Error(`ltigate's JWKS answered ${r.status}`);
        return JSON.parse(r.body);
      },
      log,
    });

    // --- the page of another origin (same site as the platform, so the
    // learner's cookies, partitioned under the platform's site, go with its
    // requests to ltigate): a form that posts into an iframe, and a
    // credentialed no-cors fetch, both to a URL given in the query.
    const otherServer = http.createServer((req, res) => {
      const u = new URL(req.url, otherOrigin);
      if (u.pathname !== '/') return res.writeHead(404).end();
      const action = u.searchParams.get('action') ?? '';
      const fields = JSON.parse(u.searchParams.get('fields') ?? '{}');
      const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><head><title>Another origin</title></head><body>
<h1>A page of another origin</h1>
<form id="csrf-form" method="post" action="${esc(action)}" target="victim">
${Object.entries(fields).map(([n, v]) => `<input type="hidden" name="${esc(n)}" value="${esc(v)}">`).join('\n')}
<button type="submit" id="csrf-submit">Post</button></form>
<button id="csrf-fetch">Fetch</button> <span id="fetch-result"></span>
<iframe name="victim" style="width:100%;height:300px"></iframe>
<script>
document.getElementById('csrf-fetch').onclick = async () => {
  const out = document.getElementById('fetch-result');
  try {
    const r = await fetch(${JSON.stringify(action)}, { method: 'POST', mode: 'no-cors', credentials: 'include',
      body: new URLSearchParams(${JSON.stringify(fields)}) });
    out.textContent = 'sent (' + r.type + ')';
  } catch (e) { out.textContent = 'error ' + e; }
};
</script></body></html>`);
    });
    servers.push(otherServer);
    await new Promise((r) => otherServer.listen(ports.other, '127.0.0.1', r));

    // --- the stock LMS: one database, two servers
    const lmsEnv = {
      STOCK_LMS_DB: path.join(scratch, 'lms.sqlite3'),
      STOCK_LMS_HOST: LMS_HOST,
      LTIGATE_ISSUER: gateway,
      LTIGATE_JWKS_URL: `http://127.0.0.1:${ports.toolJwks}/lti/1p3/pub/jwks/`,
      LTIGATE_AUDIENCE: 'openedx',
      LTIGATE_SCORE_API_URL: `http://127.0.0.1:${ports.scores}/scores`,
      LTIGATE_SCORE_API_TOKEN: SCORE_API_TOKEN,
      STOCK_LMS_LOG_LEVEL: 'INFO',
      PYTHONUNBUFFERED: '1',
      PYTHONDONTWRITEBYTECODE: '1',
    };
    const manage = path.join(STOCK_LMS, 'manage.py');
    log(`stock LMS: migrating a new database (${path.relative(ROOT, PYTHON)})`);
    await run('lms-migrate', PYTHON, [manage, 'migrate', '--noinput'], { env: lmsEnv });
    await run('lms-setup', PYTHON, [manage, 'stock_lms_setup'], { env: lmsEnv });
    const gunicorn = (port, tls) => [
      '-m', 'gunicorn', '--chdir', STOCK_LMS, 'stock_lms.wsgi:application',
      '-b', `127.0.0.1:${port}`, '--threads', '4', '--graceful-timeout', '5',
      '--access-logfile', '-', '--error-logfile', '-',
      ...(tls ? ['--certfile', cert.cert, '--keyfile', cert.key] : []),
    ];
    const lms = new Service('lms', PYTHON, gunicorn(ports.lms, false), { env: lmsEnv, logFile: logFile('lms') }).start();
    const lmsTls = new Service('lms-tls', PYTHON, gunicorn(ports.lmsTls, true), { env: lmsEnv, logFile: logFile('lms-tls') }).start();
    services.push(lms, lmsTls);

    // --- ltigate
    const configFile = path.join(scratch, 'ltigate.toml');
    writeFileSync(configFile, gatewayConfig({ ports, dir: scratch, cert, platform }));
    writeFileSync(path.join(OUT, 'ltigate.toml'), readFileSync(configFile));
    const ltigateEnv = { LTIGATE_LOG: process.env.LTIGATE_LOG ?? 'info', LTIGATE_LOG_FORMAT: 'text' };
    await run('ltigate-check', LTIGATE_BIN, ['check', '--config', configFile], { env: ltigateEnv, timeoutMs: 30_000 });
    const ltigate = new Service('ltigate', LTIGATE_BIN, ['serve', '--config', configFile], { env: ltigateEnv, logFile: logFile('ltigate') }).start();
    services.push(ltigate);
    log(`ltigate ${gateway} (scores 127.0.0.1:${ports.scores}), LMS http://127.0.0.1:${ports.lms} and ${lmsDirect}, platform ${platform.base}, other origin ${otherOrigin}`);

    const anyStatus = (url, headers) => async () => (await get(url, { headers, timeoutMs: 3_000 })).status;
    await waitFor('the plain-HTTP LMS did not answer', anyStatus(`http://127.0.0.1:${ports.lms}/api/user/v1/me`, { host: LMS_HOST }), STARTUP_TIMEOUT_MS, { alive: () => lms.alive() });
    await waitFor(`the LMS did not answer at ${lmsDirect}`, anyStatus(`${lmsDirect}/api/user/v1/me`), STARTUP_TIMEOUT_MS, { alive: () => lmsTls.alive() });
    await waitFor(`ltigate was not ready at ${gateway}/readyz`, async () => (await get(`${gateway}/readyz`, { timeoutMs: 3_000 })).status === 200, STARTUP_TIMEOUT_MS, { alive: () => ltigate.alive() });

    // ltigate publishes the key the LMS was given.
    const published = JSON.parse((await get(`${gateway}/lti/1p3/pub/jwks/`)).body);
    const mine = published.keys?.find((k) => k.kid === TOOL_KID);
    assert(mine && mine.n === toolKey.jwk.n && mine.e === toolKey.jwk.e && published.keys.length === 1,
      `ltigate publishes ${JSON.stringify(published.keys?.map((k) => k.kid))}, not exactly the tool key ${TOOL_KID} the LMS was given`);

    // --- Chromium
    log(`launching ${CHROMIUM} (resolving ${GATEWAY_HOST} and ${LMS_HOST} to 127.0.0.1, trusting only the test certificate's key, sha256/${spki})`);
    ({ context, page } = await launchChromium(userDataDir, {
      spki,
      flags: [`--host-resolver-rules=MAP ${LMS_HOST} 127.0.0.1, MAP ${GATEWAY_HOST} 127.0.0.1`],
      startupTimeoutMs: STARTUP_TIMEOUT_MS,
      stepTimeoutMs: STEP_TIMEOUT_MS,
    }));
    context.on('console', (m) => {
      if (m.type() === 'error' && !/\/favicon\.ico$/.test(m.location()?.url ?? '')) log(`console error on ${m.location()?.url ?? m.page()?.url()}: ${m.text()}`);
    });
    const tool = page.frameLocator('iframe[name="tool"]');
    const frame = () => page.frame({ name: 'tool' });
    // Every request of the iframe, for the steps that look at cookies and redirects.
    const frameTraffic = [];
    page.on('response', (r) => {
      if (r.frame() === frame()) frameTraffic.push(r);
    });
    // Navigations of the iframe that got no answer (a redirect to a host that does not resolve).
    const frameFailures = [];
    page.on('requestfailed', (r) => {
      if (r.frame() === frame() && r.isNavigationRequest()) frameFailures.push(r);
    });

    const state = {};
    // Clicks in the iframe are DOM clicks (the element's own activation
    // behaviour, as a user's click runs it): a mouse click made right after
    // the iframe changed process can be lost in Chromium's input routing to
    // out-of-process frames, which made link clicks flaky.
    const clickIn = (locator) => locator.dispatchEvent('click');

    await step('0. a direct LMS login as direct_learner sets the LMS session on the parent domain', async () => {
      const direct = await context.newPage();
      current = direct;
      const form = await direct.goto(`${lmsDirect}/login`);
      assert(form.status() === 200, `GET ${lmsDirect}/login answered ${form.status()}`);
      await direct.fill('input[name="username"]', DIRECT_USER);
      await direct.fill('input[name="password"]', DIRECT_PASSWORD);
      const posted = direct.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login');
      const submit = direct.locator('form button[type="submit"], form input[type="submit"]');
      if (await submit.count()) await submit.first().click();
      else await direct.press('input[name="password"]', 'Enter');
      const answer = await posted;
      assert(answer.status() < 400, `POST /login answered ${answer.status()}: ${(await answer.text().catch(() => '')).slice(0, 300)}`);
      await direct.waitForLoadState('load');
      const me = await direct.goto(`${lmsDirect}/api/user/v1/me`);
      const body = await me.text();
      assert(me.status() === 200, `/api/user/v1/me answered ${me.status()} after the login: ${body.slice(0, 300)}`);
      assert(JSON.parse(body).username === DIRECT_USER, `/api/user/v1/me says ${body}`);
      const cookies = await context.cookies(lmsDirect);
      const session = cookies.find((c) => c.name === 'sessionid');
      assert(session, `the login set no sessionid (cookies: ${cookies.map((c) => `${c.name}@${c.domain}`).join(', ')})`);
      assert(session.domain === `.${LMS_HOST}`,
        `the LMS sessionid is on ${session.domain}, not the parent domain .${LMS_HOST} (SESSION_COOKIE_DOMAIN), so it would not reach ${GATEWAY_HOST}`);
      state.directSession = session;
      log(`     sessionid on ${session.domain} (SameSite=${session.sameSite}, Secure=${session.secure})`);
      await direct.close();
    });

    await step("1. Launch ends, in the platform's iframe, on ltigate's origin showing the unit", async () => {
      current = page;
      const response = await page.goto(`${platform.base}/`);
      assert(response.status() === 200, `the platform page answered ${response.status()}`);
      await page.click('#launch');
      try {
        await tool.locator('#ltigate-user').waitFor();
      } catch {
        const auth = platform.record.auth.at(-1);
        throw new Failure(`the unit did not show in the iframe within ${STEP_TIMEOUT_MS} ms (iframe at ${frame()?.url()}; platform auth requests: ${platform.record.auth.length}${auth?.error ? `, last refused: ${auth.error}` : ''})`);
      }
      const at = new URL(frame().url());
      assert(at.origin === gateway, `the iframe is at ${frame().url()}, not on ltigate's origin ${gateway}`);
      assert(decodeURIComponent(at.pathname) === `/lti/1p3/launch/${COURSE}/${UNIT}`, `the iframe is at ${frame().url()}, not the unit's display path ${displayUrl}`);
      assert(await tool.locator('#problem-submit').count(), 'the unit page has no #problem-submit');
      state.launched = true;
      // Whether the direct login's parent-domain sessionid came along to the gateway.
      if (state.directSession) {
        const display = frameTraffic.find((r) => r.url().startsWith(`${gateway}/lti/1p3/launch/${COURSE}`) && r.request().method() === 'GET');
        const sent = (await display?.request().allHeaders().catch(() => ({})))?.cookie ?? '';
        const names = sent.split(';').map((c) => c.split('=')[0].trim()).filter(Boolean);
        state.directSessionSent = sent.split(';').some((c) => c.trim() === `sessionid=${state.directSession.value}`);
        log(`     the display request carried the cookies ${names.join(', ') || '(none)'}${state.directSessionSent ? `, among them the direct login's .${LMS_HOST} sessionid` : ''}`);
      }
    });

    await step('2. the unit renders for a learner the LMS never saw (created and enrolled on first launch)', async () => {
      requires(state.launched, 'the launch failed');
      const user = (await tool.locator('#ltigate-user').textContent()).trim();
      assert(/^lti_[0-9a-f]{24}$/.test(user), `#ltigate-user is ${JSON.stringify(user)}, not an lti_<24 hex> username`);
      assert(user === expectedUsername(platform), `#ltigate-user is ${user}, but ltigate's username for this launch is ${expectedUsername(platform)}`);
      assert(user !== DIRECT_USER, 'the unit shows the direct login user');
    });

    await step("3. the unit's problem submit (X-CSRFToken) and /event POST through the gate answer 200", async () => {
      requires(state.launched, 'the launch failed');
      const requestSeen = page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/handler/') && r.frame() === frame());
      await clickIn(tool.locator('#problem-submit'));
      const request = await requestSeen;
      const response = await request.response();
      await tool.locator('#problem-result').filter({ hasText: /^\s*\d{3}/ }).waitFor();
      const shown = (await tool.locator('#problem-result').textContent()).trim();
      assert(new URL(request.url()).origin === gateway, `the handler POST went to ${request.url()}`);
      const headers = await request.allHeaders();
      assert(headers['x-csrftoken'], 'the handler POST carried no X-CSRFToken');
      state.handler = { url: request.url(), body: request.postData() ?? '', contentType: headers['content-type'] ?? '' };
      assert(shown.startsWith('200'), `#problem-result is ${JSON.stringify(shown.slice(0, 400))} (the handler answered ${response?.status()})`);
      state.submitted = true;
      try {
        state.problemResult = JSON.parse(shown.slice(shown.indexOf(' ') + 1));
      } catch {
        state.problemResult = null;
      }

      const eventSeen = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/event' && r.frame() === frame());
      await clickIn(tool.locator('#event-submit'));
      const event = await eventSeen;
      await tool.locator('#event-result').filter({ hasText: /^\s*\d{3}/ }).waitFor();
      const eventShown = (await tool.locator('#event-result').textContent()).trim();
      assert(new URL(event.url()).origin === gateway, `the /event POST went to ${event.url()}`);
      assert(eventShown.startsWith('200'), `#event-result is ${JSON.stringify(eventShown.slice(0, 400))}`);
      await page.screenshot({ path: path.join(OUT, 'unit.png'), fullPage: true });
    });

    await step("4. the unit's composite score (2 of 2) reaches the platform as 1/1", async () => {
      requires(state.submitted, 'the problem submit failed');
      const r = state.problemResult;
      assert(r && r.current_score === 2 && r.total_possible === 2, `the problem submit did not earn 2 of 2: ${JSON.stringify(r)}`);
      const good = (s) => Math.abs(s.scoreGiven - 1) < 1e-9 && s.scoreMaximum === 1 && s.activityProgress === 'Completed' && s.gradingProgress === 'FullyGraded';
      try {
        await waitFor('no score 1/1 reached the platform', () => platform.acceptedScores().some(good), SCORE_TIMEOUT_MS);
      } catch (e) {
        const refused = platform.record.scores.filter((s) => s.status !== 200).map((s) => `${s.status} ${s.error}`);
        const tokens = platform.record.token.map((t) => (t.error ? `refused: ${t.error}` : 'issued'));
        throw new Failure(`${e.message}; accepted scores: ${JSON.stringify(platform.acceptedScores())}; refused: ${JSON.stringify(refused)}; token requests: ${JSON.stringify(tokens)}; ltigate log:\n${tail(path.join(OUT, 'ltigate.log'), 12)}`);
      }
      const token = platform.record.token.find((t) => t.issued);
      assert(token, 'a score arrived without a token the platform issued');
    });

    await step('5. the locked course asset (img#locked-asset) loads through the gate', async () => {
      requires(state.launched, 'the launch failed');
      const img = tool.locator('img#locked-asset');
      assert(await img.count(), 'the unit has no img#locked-asset');
      await img.evaluate((el) => (el.complete ? null : new Promise((r) => { el.onload = el.onerror = r; })));
      const { width, src } = await img.evaluate((el) => ({ width: el.naturalWidth, src: el.currentSrc || el.src }));
      const served = frameTraffic.find((r) => r.url() === src);
      assert(width > 0, `img#locked-asset (${src}) did not load (naturalWidth 0; answered ${served?.status() ?? 'unknown'})`);
    });

    await step("6. a cross-origin POST to the problem handler, with the learner's session, is refused and changes no score", async () => {
      requires(state.handler, 'the problem submit failed');
      // Let the submit's deliveries settle first.
      let count = platform.record.scores.length;
      let since = Date.now();
      await waitFor('the score stream did not settle', () => {
        if (platform.record.scores.length !== count) {
          count = platform.record.scores.length;
          since = Date.now();
        }
        return Date.now() - since >= SCORES_QUIET_MS;
      }, SCORE_TIMEOUT_MS);
      const before = platform.record.scores.length;
      // The fields the unit posted, each with a wrong answer, as a form (what a
      // cross-origin page can send): were it accepted, the score would drop
      // from 2 to 0 and a new score would reach the platform.
      const fields = state.handler.contentType.includes('application/x-www-form-urlencoded')
        ? Object.fromEntries([...new URLSearchParams(state.handler.body).keys()].map((k) => [k, 'cross-origin-wrong-answer']))
        : { body: 'cross-origin-wrong-answer' };
      const other = await context.newPage();
      current = other;
      await other.goto(`${otherOrigin}/?${new URLSearchParams({ action: state.handler.url, fields: JSON.stringify(fields) })}`);
      const attempts = [];
      const ltigateLog = path.join(OUT, 'ltigate.log');
      for (const [how, button] of [['form POST into an iframe', '#csrf-submit'], ['credentialed no-cors fetch', '#csrf-fetch']]) {
        const offset = statSync(ltigateLog).size;
        const seen = other.waitForResponse((r) => r.url() === state.handler.url && r.request().method() === 'POST');
        await other.click(button);
        const r = await seen;
        const body = await r.text().catch(() => '');
        // How ltigate decided: its access-log line for this POST.
        const line = await waitFor(`ltigate logged no access line for the ${how}`,
          () => accessLinesSince(ltigateLog, offset, 'POST', new URL(state.handler.url).pathname)[0], 5_000).catch(() => null);
        const decision = /decision="([^"]*)"/.exec(line ?? '')?.[1];
        attempts.push({ how, status: r.status(), decision, refusal: ltigateRefusal(body), body: body.slice(0, 200) });
      }
      await sleep(SCORES_QUIET_MS);
      for (const a of attempts) {
        log(`     ${a.how}: ltigate decision ${a.decision}, ${a.status} from ${a.refusal ? `ltigate (${a.refusal.code})` : 'the LMS'}${a.refusal ? '' : `: ${a.body.replace(/\s+/g, ' ').slice(0, 100)}`}`);
        // Refused for want of a session would test nothing: the learner's
        // session must have come along (ltigate's access log says how it decided).
        assert(a.decision && !['no_session', 'session_expired', 'grant_expired'].includes(a.decision),
          `the ${a.how} reached ltigate without the learner's live session (decision ${a.decision}), so it tests nothing`);
        assert(a.status === 403 || (a.refusal && a.status >= 400 && a.status < 500), `the ${a.how} from ${otherOrigin} answered ${a.status}, not a refusal: ${a.body}`);
      }
      const after = platform.record.scores.slice(before);
      assert(after.length === 0, `the platform received ${after.length} score request(s) after the cross-origin POSTs: ${JSON.stringify(after.map((s) => s.body))}`);
      await other.close();
      current = page;
    });

    await step('8. the direct LMS login survives the launch and the problem submit', async () => {
      requires(state.directSession, 'the direct login failed');
      requires(state.launched, 'the launch failed');
      assert(state.directSessionSent, `the browser did not send the direct login's .${LMS_HOST} sessionid to ltigate with the launch, so this tests nothing (third-party cookies blocked?)`);
      const direct = await context.newPage();
      current = direct;
      const me = await direct.goto(`${lmsDirect}/api/user/v1/me`);
      const body = await me.text();
      assert(me.status() === 200, `${lmsDirect}/api/user/v1/me answered ${me.status()} after the launch: ${body.slice(0, 300)}`);
      assert(JSON.parse(body).username === DIRECT_USER, `${lmsDirect}/api/user/v1/me says ${body} after the launch, not ${DIRECT_USER}`);
      const now = (await context.cookies(lmsDirect)).filter((c) => c.name === 'sessionid');
      log(`     the .${LMS_HOST} sessionid is ${now.some((c) => c.value === state.directSession.value) ? 'unchanged' : 'changed'}; sessionid cookies for ${LMS_HOST}: ${now.map((c) => c.domain).join(', ')}`);
      await direct.close();
      current = page;
    });

    /** Brings the iframe back to the unit (its display path, under the same grant). */
    const showUnit = async () => {
      if (frame().url() !== displayUrl) {
        const r = await frame().goto(displayUrl);
        assert(r?.status() === 200, `going back to the unit answered ${r?.status()}`);
      }
      await tool.locator('#ltigate-user').waitFor();
      await frame().waitForLoadState('load');
    };

    /** Clicks a link in the unit and returns where the iframe ends and its last answer. */
    const follow = async (selector) => {
      const link = tool.locator(selector);
      assert(await link.count(), `the unit has no ${selector}`);
      const href = await link.evaluate((a) => a.href);
      const from = frameTraffic.length;
      const failedFrom = frameFailures.length;
      await clickIn(link);
      await waitFor(`the iframe did not navigate for ${selector} (${href})`, () => frameFailures.length > failedFrom
        || frameTraffic.slice(from).some((r) => r.request().isNavigationRequest() && !(r.status() >= 300 && r.status() < 400)), STEP_TIMEOUT_MS);
      const chain = frameTraffic.slice(from).filter((r) => r.request().isNavigationRequest());
      const lost = frameFailures[failedFrom];
      if (lost) {
        throw new Failure(`${selector} (${href}) led the iframe to ${lost.url()}, which failed (${lost.failure()?.errorText}); the chain: ${chain.map((r) => `${r.status()} ${r.url()}`).join(' | ')}`);
      }
      await frame().waitForLoadState('load').catch(() => {});
      const last = chain.at(-1);
      const body = await last.text().catch(() => '');
      log(`     ${selector} ${href}: ${chain.map((r) => `${r.status()} ${r.url()}${r.headers().location ? ` -> ${r.headers().location}` : ''}`).join(' | ')}`);
      return { href, chain, last, body, url: frame().url() };
    };

    await step("9. the gated link (redirect to /xblock/<gated_seq>) ends on a page that is not ltigate's refusal", async () => {
      requires(state.launched, 'the launch failed');
      current = page;
      await showUnit();
      const { last, body, url } = await follow('a#gated-link');
      const refusal = ltigateRefusal(body);
      await page.screenshot({ path: path.join(OUT, 'gated.png'), fullPage: true });
      assert(!refusal, `the gated link ended on ltigate's refusal (${last.status()} ${refusal?.code}: ${refusal?.title}) at ${url}; ltigate: ${accessLine(path.join(OUT, 'ltigate.log'), last.headers()['x-request-id'])}`);
      assert(new URL(url).origin === gateway, `the gated link left ltigate's origin: ${url}`);
      assert(last.status() < 400, `the gated link ended on ${last.status()} at ${url}: ${body.replace(/\s+/g, ' ').slice(0, 200)}`);
      assert(await tool.locator('#gated-sequence').count(), `the gated link ended at ${url} (${last.status()}), not on the gated sequence's page (#gated-sequence)`);
      assert(decodeURIComponent(new URL(url).pathname) === `/xblock/${GATED_SEQ}`, `the gated link ended at ${url}, not /xblock/${GATED_SEQ}`);
    });

    await step("10. the jump link (jump_to_id redirects to the MFE on another host) ends on ltigate's refusal page", async () => {
      requires(state.launched, 'the launch failed');
      current = page;
      await showUnit();
      state.jumpLogOffset = statSync(path.join(OUT, 'ltigate.log')).size;
      const { last, body, url } = await follow('a#jump-link');
      await page.screenshot({ path: path.join(OUT, 'jump.png'), fullPage: true });
      const refusal = ltigateRefusal(body);
      assert(new URL(url).origin === gateway, `the jump link left ltigate's origin: the iframe is at ${url}`);
      assert(refusal, `the jump link ended on ${last.status()} at ${url}, not ltigate's refusal page: ${body.replace(/\s+/g, ' ').slice(0, 200)}`);
      assert(last.status() >= 400, `ltigate's refusal page came with status ${last.status()}`);
      // Whether ltigate refused at its gate or replaced the LMS's redirect
      // (for the log only: ltigate's log says which).
      const redirectLine = readFileSync(path.join(OUT, 'ltigate.log')).subarray(state.jumpLogOffset).toString('utf8')
        .split('\n').find((l) => /redirect/i.test(l) && !l.includes('ltigate::access'));
      log(`     ltigate: ${redirectLine ? redirectLine.replace(/^\S+\s+/, '') : 'no redirect was replaced (refused at the gate)'}`);
      const requestId = last.headers()['x-request-id'];
      log(`     refusal ${last.status()} ${refusal.code} (${refusal.title}); request id ${requestId} ${requestId && body.includes(requestId) ? 'shown on the page' : 'not on the page'}; ltigate: ${accessLine(path.join(OUT, 'ltigate.log'), requestId)}`);
    });

    await step('7. the LMS session ltigate gave the browser is refused at the LMS directly (401)', async () => {
      requires(state.launched, 'the launch failed');
      const cookies = await context.cookies(gateway);
      writeFileSync(path.join(OUT, 'cookies.json'), `${JSON.stringify(cookieSummary(await context.cookies()), null, 2)}\n`);
      const renamed = cookies.find((c) => c.name === '__Host-lms.sessionid');
      const plain = cookies.find((c) => c.name === 'sessionid' && c.domain === GATEWAY_HOST);
      const session = renamed ?? plain;
      assert(session, `no LMS session cookie from ltigate (__Host-lms.sessionid, or sessionid on ${GATEWAY_HOST}); cookies for ${gateway}: ${cookies.map((c) => `${c.name}@${c.domain}`).join(', ')}`);
      log(`     using ${session.name} (domain ${session.domain}${session.partitionKey ? `, partitioned under ${session.partitionKey}` : ''})`);
      assert(!state.directSession || session.value !== state.directSession.value, 'the gateway session cookie is the direct login\'s');
      // Control: the same request with the direct login's session answers 200.
      if (state.directSession) {
        const control = await get(`${lmsDirect}/api/user/v1/me`, { headers: { cookie: `sessionid=${state.directSession.value}` } });
        assert(control.status === 200 && JSON.parse(control.body).username === DIRECT_USER, `control: the direct session answered ${control.status} ${control.body.slice(0, 200)}`);
      }
      const r = await get(`${lmsDirect}/api/user/v1/me`, { headers: { cookie: `sessionid=${session.value}` } });
      assert(r.status === 401, `${lmsDirect}/api/user/v1/me with the gateway's LMS session and no assertion answered ${r.status}: ${r.body.slice(0, 300)}`);
    });
  } catch (e) {
    test.fail(e);
    if (current && !current.isClosed()) await current.screenshot({ path: path.join(OUT, 'failure-setup.png'), fullPage: true }).catch(() => {});
  } finally {
    clearTimeout(overall);
    await cleanup();
  }
  if (test.failed) {
    for (const name of ['ltigate', 'lms', 'lms-tls']) {
      log(`last lines of ${path.relative(ROOT, logFile(name))}:\n${tail(logFile(name), 15)}`);
    }
    const notPassed = test.results.filter((r) => !r.ok).map((r) => `  ${r.name}: ${r.message.split('\n')[0]}`);
    if (notPassed.length) log(`failed steps:\n${notPassed.join('\n')}`);
  }
  log(`artifacts and logs in ${path.relative(ROOT, OUT) || OUT}`);
  test.finish();
}

test.main(main);
