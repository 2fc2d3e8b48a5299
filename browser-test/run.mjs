#!/usr/bin/env node
// The browser test: headless Chromium (Debian's `chromium` package, driven by
// playwright-core, which never downloads a browser) runs a real launch of the
// ltigate demo (examples/demo.rs), with ltigate on HTTPS as in production.
//
//   1. the demo platform's page loads on its own origin (http://127.0.0.1:P);
//   2. pressing Launch ends, inside the page's iframe, on the demo unit served
//      by ltigate (https://localhost:G, another site) from the demo upstream:
//      the learner's name from the verified assertion shows, and the shared
//      static file came through the gate;
//   3. ltigate's cookies (and the upstream's, renamed by ltigate to
//      __Host-lms.<name>, with a readable copy of csrftoken for the page) are
//      Secure, SameSite=None and Partitioned under the platform's site;
//   4. a POST made by the unit's own JavaScript to an XBlock handler, with
//      X-CSRFToken from its csrftoken cookie, passes through ltigate and its
//      result shows in the page;
//   5. navigating the iframe to /dashboard (outside the grant) shows ltigate's
//      refusal page (not_granted), not the LMS.
//
// Artifacts in target/browser-test/: launch.png (after step 4), refusal.png,
// demo.log (the demo's output), and failure.png when a step fails.
//
// Environment: DEMO_BIN (the demo binary; default the newer of
// target/{release,debug}/examples/demo), CHROMIUM (default /usr/bin/chromium),
// BROWSER_TEST_OUT (artifact directory), CHROMIUM_EXTRA_ARGS (more flags, for
// experiments), BROWSER_TEST_VERBOSE (print the cookies, without values).

import { spawn } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = process.env.BROWSER_TEST_OUT ?? path.join(ROOT, 'target', 'browser-test');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
// The most recently built of the release and debug demo binaries.
const DEMO_BIN =
  process.env.DEMO_BIN ??
  ['release', 'debug']
    .map((profile) => path.join(TARGET_DIR, profile, 'examples', 'demo'))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];

const COURSE = 'course-v1:DemoX+GW101+2026';
const USAGE = 'block-v1:DemoX+GW101+2026+type@vertical+block@welcome';
const LEARNER = 'Ada Lovelace';

const STARTUP_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
const TOTAL_TIMEOUT_MS = 240_000;

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Extra Chromium flags for experiments, e.g. --test-third-party-cookie-phaseout.
const EXTRA_FLAGS = (process.env.CHROMIUM_EXTRA_ARGS ?? '').split(/\s+/).filter(Boolean);

function log(message) {
  console.log(`browser-test: ${message}`);
}

class Failure extends Error {}

function assert(condition, message) {
  if (!condition) throw new Failure(message);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the demo and resolves once it printed its banner. */
function startDemo(args, logFile) {
  const child = spawn(DEMO_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LTIGATE_LOG: process.env.LTIGATE_LOG ?? 'info' },
  });
  const out = createWriteStream(logFile);
  child.stderr.pipe(out);
  let stdout = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Failure(`the demo did not start within ${STARTUP_TIMEOUT_MS} ms`)),
      STARTUP_TIMEOUT_MS,
    );
    child.stdout.on('data', (chunk) => {
      out.write(chunk);
      stdout += chunk;
      if (stdout.includes('Press Ctrl-C to stop.')) {
        clearTimeout(timer);
        resolve(stdout);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Failure(`the demo exited during start-up (code ${code}, signal ${signal}); see ${logFile}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Failure(`cannot run the demo ${DEMO_BIN}: ${e.message}`));
    });
  });
  return { child, ready };
}

/** SIGTERM, then SIGKILL after 10 s. */
function stopDemo(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, for Chromium's SPKI allow-list. */
function spkiHash(certFile) {
  const der = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

async function main() {
  assert(DEMO_BIN && existsSync(DEMO_BIN), 'no demo binary: run `cargo build --release --example demo` (or set DEMO_BIN)');
  assert(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
  mkdirSync(OUT, { recursive: true });
  for (const f of ['launch.png', 'refusal.png', 'failure.png']) rmSync(path.join(OUT, f), { force: true });

  const scratch = mkdtempSync(path.join(os.tmpdir(), 'ltigate-browser-test-'));
  const certDir = path.join(scratch, 'tls');
  const userDataDir = path.join(scratch, 'chromium-profile');
  mkdirSync(userDataDir);
  const [gatewayPort, platformPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  const platform = `http://127.0.0.1:${platformPort}`;
  const gateway = `https://localhost:${gatewayPort}`;
  const unitUrl = `${gateway}/lti/1p3/launch/${COURSE}/${USAGE}`;

  let demo;
  let context;
  let page;
  let passed = 0;
  let failed = 0;
  const cleanup = async () => {
    if (context) await context.close().catch(() => {});
    context = undefined;
    await stopDemo(demo?.child);
    rmSync(scratch, { recursive: true, force: true });
  };
  const overall = setTimeout(async () => {
    console.error(`browser-test: FAILED: the whole test took longer than ${TOTAL_TIMEOUT_MS} ms`);
    await cleanup();
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      await cleanup();
      process.exit(1);
    });
  }

  const step = async (name, body) => {
    try {
      await body();
      passed += 1;
      log(`ok   ${name}`);
    } catch (e) {
      failed += 1;
      log(`FAIL ${name}: ${e instanceof Failure ? e.message : (e?.stack ?? e)}`);
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { reported: true });
    }
  };

  try {
    log(`starting ${path.relative(ROOT, DEMO_BIN)}: platform ${platform}, ltigate ${gateway}, upstream 127.0.0.1:${upstreamPort}`);
    demo = startDemo(
      [
        '--gateway-port', String(gatewayPort),
        '--platform-port', String(platformPort),
        '--upstream-port', String(upstreamPort),
        '--tls-self-signed', certDir,
      ],
      path.join(OUT, 'demo.log'),
    );
    await demo.ready;

    // Trust exactly the demo's certificate (by its key), nothing else.
    const spki = spkiHash(path.join(certDir, 'cert.pem'));
    log(`launching ${CHROMIUM} (trusting only the demo certificate's key, sha256/${spki})`);
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${spki}`, ...EXTRA_FLAGS],
      viewport: { width: 1280, height: 1100 },
      timeout: STARTUP_TIMEOUT_MS,
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') log(`page console error: ${m.text()}`);
    });
    const tool = page.frameLocator('iframe[name="tool"]');
    const frame = () => page.frame({ name: 'tool' });

    await step('the demo platform page loads on its own origin', async () => {
      const response = await page.goto(`${platform}/`);
      assert(response.status() === 200, `platform page answered ${response.status()}`);
      assert(new URL(page.url()).origin === platform, `page is at ${page.url()}`);
      assert((await page.title()).includes('Demo platform'), `unexpected title ${await page.title()}`);
    });

    await step('Launch ends, in the iframe, on the gated unit from the upstream (the learner shows)', async () => {
      await page.click('#launch');
      await tool.locator('#learner-name').waitFor();
      assert(frame().url() === unitUrl, `the iframe is at ${frame().url()}, expected ${unitUrl}`);
      const name = await tool.locator('#learner-name').textContent();
      assert(name === LEARNER, `learner name is ${JSON.stringify(name)}`);
      const usage = await tool.locator('#granted-usage').textContent();
      assert(usage === USAGE, `granted usage key is ${JSON.stringify(usage)}`);
      const status = await tool.locator('#assertion-status').textContent();
      assert(status.includes('verified'), `assertion status: ${status}`);
      // /static/demo/demo.css came through the gate (public rule).
      const marker = await tool
        .locator('#static-status')
        .evaluate((el) => getComputedStyle(el, '::after').content);
      assert(marker === '"loaded through the gate"', `static stylesheet not applied (::after is ${marker})`);
    });

    await step('cookies are Secure, SameSite=None and Partitioned under the platform site', async () => {
      const cookies = await context.cookies(gateway);
      // The LMS's csrftoken comes back to the LMS as __Host-lms.csrftoken
      // (HttpOnly); the page's scripts read the plain copy, never forwarded.
      for (const name of ['ltigate_session', '__Host-lms.csrftoken', 'csrftoken']) {
        const c = cookies.find((x) => x.name === name);
        assert(c, `no ${name} cookie for ${gateway} (have: ${cookies.map((x) => x.name).join(', ') || 'none'})`);
        assert(c.secure && c.sameSite === 'None', `${name} is not Secure; SameSite=None: ${JSON.stringify(c)}`);
        assert(c.partitionKey, `${name} is not partitioned: ${JSON.stringify(c)}`);
        assert(
          c.partitionKey === platform || c.partitionKey === 'http://127.0.0.1',
          `${name} is partitioned under ${c.partitionKey}, not the platform's site`,
        );
      }
      assert(cookies.find((x) => x.name === 'ltigate_session').httpOnly, 'ltigate_session is not HttpOnly');
      assert(cookies.find((x) => x.name === '__Host-lms.csrftoken').httpOnly, '__Host-lms.csrftoken is not HttpOnly');
      assert(!cookies.find((x) => x.name === 'csrftoken').httpOnly, 'the page cannot read csrftoken');
      if (process.env.BROWSER_TEST_VERBOSE) log(`cookies: ${JSON.stringify(cookies.map(({ value, ...c }) => c))}`);
    });

    await step("the unit's own script POSTs to an XBlock handler with X-CSRFToken, through the gate", async () => {
      const requestSeen = page.waitForRequest((r) => r.url().includes('/handler/demo_submit'));
      const responseSeen = page.waitForResponse((r) => r.url().includes('/handler/demo_submit'));
      await tool.locator('#call-handler').click();
      const [request, response] = await Promise.all([requestSeen, responseSeen]);
      assert(request.method() === 'POST', `handler request was ${request.method()}`);
      assert(request.frame() === frame(), 'the handler request did not come from the iframe');
      assert(new URL(request.url()).origin === gateway, `handler request went to ${request.url()}`);
      const csrf = (await request.allHeaders())['x-csrftoken'];
      assert(csrf && csrf.length >= 16, `no X-CSRFToken header on the handler request (${csrf})`);
      assert(response.status() === 200, `handler answered ${response.status()}: ${await response.text()}`);
      await tool.locator('#handler-result[data-status]').waitFor();
      const shown = await tool.locator('#handler-result').textContent();
      assert(shown.startsWith('HTTP 200\n'), `the page shows: ${shown}`);
      const result = JSON.parse(shown.slice(shown.indexOf('\n') + 1));
      assert(result.ok === true && result.csrf === 'verified', `handler result: ${JSON.stringify(result)}`);
      assert(result.name === LEARNER && /^lti_[0-9a-f]{24}$/.test(result.user), `handler saw user ${JSON.stringify(result)}`);
      assert(result.block === USAGE && result.course === COURSE, `handler saw block ${result.block} in ${result.course}`);
      await tool.locator('#handler-result').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(OUT, 'launch.png'), fullPage: true });
      log(`screenshot: ${path.relative(ROOT, path.join(OUT, 'launch.png'))}`);
    });

    await step("navigating the iframe to /dashboard (outside the grant) shows ltigate's refusal", async () => {
      const responseSeen = page.waitForResponse((r) => r.url() === `${gateway}/dashboard`);
      await tool.locator('#dashboard-link').click();
      const response = await responseSeen;
      assert(response.status() === 403, `/dashboard answered ${response.status()}`);
      await tool.locator('h1').filter({ hasText: 'This content was not part of your launch' }).waitFor();
      assert(frame().url() === `${gateway}/dashboard`, `the iframe is at ${frame().url()}`);
      const code = await tool.locator('p.ref code').textContent();
      assert(code === 'not_granted', `refusal reference is ${code}`);
      assert((await tool.locator('#lms-dashboard').count()) === 0, 'the LMS dashboard was shown');
      await page.screenshot({ path: path.join(OUT, 'refusal.png'), fullPage: true });
    });
  } catch (e) {
    if (!e?.reported) {
      failed += 1;
      log(`FAIL: ${e instanceof Failure ? e.message : (e?.stack ?? e)}`);
    }
    if (page) {
      await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }).catch(() => {});
      const inner = await page
        .frame({ name: 'tool' })
        ?.evaluate(() => `${location.href}\n${document.body?.innerText ?? ''}`)
        .catch(() => '(frame unreadable)');
      if (inner) log(`the iframe shows:\n${inner}`);
    }
    const logFile = path.join(OUT, 'demo.log');
    if (existsSync(logFile)) {
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-25).join('\n');
      log(`last lines of ${path.relative(ROOT, logFile)}:\n${tail}`);
    }
  } finally {
    clearTimeout(overall);
    await cleanup();
  }
  console.log(`browser test: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`browser-test: FAIL: ${e instanceof Failure ? e.message : (e?.stack ?? e)}`);
  console.log('browser test: 0 passed, 1 failed');
  process.exit(1);
});
