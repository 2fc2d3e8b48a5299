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

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { CHROMIUM, ROOT, Service, TARGET_DIR, TestRun, assert, assertChromium, freePort, launchChromium, spkiHash, tail, toolFrameText } from './harness.mjs';

const OUT = process.env.BROWSER_TEST_OUT ?? path.join(ROOT, 'target', 'browser-test');
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

const test = new TestRun({ name: 'browser-test', summary: 'browser test' });
const { log } = test;

async function main() {
  assert(DEMO_BIN && existsSync(DEMO_BIN), 'no demo binary: run `cargo build --release --example demo` (or set DEMO_BIN)');
  assertChromium();
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
  const cleanup = async () => {
    if (context) await context.close().catch(() => {});
    context = undefined;
    await demo?.stop();
    rmSync(scratch, { recursive: true, force: true });
  };
  const overall = test.abortOn(TOTAL_TIMEOUT_MS, cleanup, {
    before: () => console.error(`browser-test: FAILED: the whole test took longer than ${TOTAL_TIMEOUT_MS} ms`),
  });
  // The first failed step ends the run.
  const step = test.stepper();

  try {
    log(`starting ${path.relative(ROOT, DEMO_BIN)}: platform ${platform}, ltigate ${gateway}, upstream 127.0.0.1:${upstreamPort}`);
    demo = new Service(
      'the demo',
      DEMO_BIN,
      [
        '--gateway-port', String(gatewayPort),
        '--platform-port', String(platformPort),
        '--upstream-port', String(upstreamPort),
        '--tls-self-signed', certDir,
      ],
      {
        logFile: path.join(OUT, 'demo.log'),
        env: { LTIGATE_LOG: process.env.LTIGATE_LOG ?? 'info' },
        cwd: process.cwd(),
        detached: false,
      },
    ).start();
    await demo.printed('Press Ctrl-C to stop.', STARTUP_TIMEOUT_MS);

    // Trust exactly the demo's certificate (by its key), nothing else.
    const spki = spkiHash(readFileSync(path.join(certDir, 'cert.pem')));
    log(`launching ${CHROMIUM} (trusting only the demo certificate's key, sha256/${spki})`);
    ({ context, page } = await launchChromium(userDataDir, { spki, startupTimeoutMs: STARTUP_TIMEOUT_MS, stepTimeoutMs: STEP_TIMEOUT_MS }));
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
      for (const name of ['__Host-ltigate_session', '__Host-lms.csrftoken', 'csrftoken']) {
        const c = cookies.find((x) => x.name === name);
        assert(c, `no ${name} cookie for ${gateway} (have: ${cookies.map((x) => x.name).join(', ') || 'none'})`);
        assert(c.secure && c.sameSite === 'None', `${name} is not Secure; SameSite=None: ${JSON.stringify(c)}`);
        assert(c.partitionKey, `${name} is not partitioned: ${JSON.stringify(c)}`);
        assert(
          c.partitionKey === platform || c.partitionKey === 'http://127.0.0.1',
          `${name} is partitioned under ${c.partitionKey}, not the platform's site`,
        );
      }
      assert(cookies.find((x) => x.name === '__Host-ltigate_session').httpOnly, '__Host-ltigate_session is not HttpOnly');
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
      // The reason code; the request id follows it (src/http/pages.rs).
      const code = await tool.locator('p.ref code').first().textContent();
      assert(code === 'not_granted', `refusal reference is ${code}`);
      assert((await tool.locator('#lms-dashboard').count()) === 0, 'the LMS dashboard was shown');
      await page.screenshot({ path: path.join(OUT, 'refusal.png'), fullPage: true });
    });

    await step("the demo's output carries ltigate's access log, one line per decision", async () => {
      // The log is flushed every 100 ms (src/logging.rs): wait a little for the last line.
      const logFile = path.join(OUT, 'demo.log');
      const wanted = ['launch', 'display', 'allow:usage', 'not_granted'].map((d) => `decision="${d}"`);
      let missing = wanted;
      for (let i = 0; i < 20 && missing.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const text = readFileSync(logFile, 'utf8');
        missing = wanted.filter((w) => !text.split('\n').some((l) => l.includes('ltigate::access') && l.includes(w)));
      }
      assert(missing.length === 0, `no access-log line with ${missing.join(', ')} in ${path.relative(ROOT, logFile)}`);
    });
  } catch (e) {
    test.fail(e);
    if (page) {
      await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }).catch(() => {});
      const inner = await toolFrameText(page, { unreadable: '(frame unreadable)' });
      if (inner) log(`the iframe shows:\n${inner}`);
    }
    const logFile = path.join(OUT, 'demo.log');
    if (existsSync(logFile)) log(`last lines of ${path.relative(ROOT, logFile)}:\n${tail(logFile, 24)}`);
  } finally {
    clearTimeout(overall);
    await cleanup();
  }
  test.finish();
}

test.main(main);
