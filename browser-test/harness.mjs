// What the browser tests (run.mjs, stock-lms.mjs) share: the test run (log,
// steps, pass/fail count, summary line, exit code), assertions, free ports,
// long-running child processes with their log files, and headless Chromium
// (Debian's `chromium`, through playwright-core) trusting exactly one
// certificate's key. Each test's own set-up and steps stay in its own file.
//
// Environment read here: CHROMIUM (default /usr/bin/chromium),
// CHROMIUM_EXTRA_ARGS (more flags, for experiments, e.g.
// --test-third-party-cookie-phaseout).

import { spawn } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository's root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Cargo's target directory (CARGO_TARGET_DIR, default ROOT/target). */
export const TARGET_DIR = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(ROOT, 'target');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

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
const EXTRA_FLAGS = (process.env.CHROMIUM_EXTRA_ARGS ?? '').split(/\s+/).filter(Boolean);

// ------------------------------------------------------------- assertions

export class Failure extends Error {}

export function assert(condition, message) {
  if (!condition) throw new Failure(message);
}

/** How an error is reported: a Failure by its message, anything else by its stack. */
export function explain(e) {
  return e instanceof Failure ? e.message : (e?.stack ?? String(e));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 just now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The last `lines` lines of a file (and the partial line after them). */
export function tail(file, lines = 20) {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n');
}

// --------------------------------------------------------------- test run

/**
 * One test run: its log lines (`<name>: …`, or `<name> [  t s]: …` with
 * `clock`, the seconds since it began), its steps and their count, and its
 * last line `<summary>: N passed, N failed`.
 */
export class TestRun {
  constructor({ name, summary, clock = false }) {
    this.name = name;
    this.label = summary;
    this.passed = 0;
    this.failed = 0;
    /** Every step run: { name, ok, message }. */
    this.results = [];
    const t0 = Date.now();
    this.log = clock
      ? (message) => console.log(`${name} [${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]: ${message}`)
      : (message) => console.log(`${name}: ${message}`);
  }

  /**
   * The function that runs one step: `step(name, body)` logs `ok` or `FAIL`
   * and counts it; after a failure it awaits `onFailure(name, error)`, then
   * either throws (the default: the first failure ends the run, marked
   * `reported` so that fail() does not count it again) or, with `keepGoing`,
   * returns false.
   */
  stepper({ keepGoing = false, onFailure = async () => {} } = {}) {
    return async (name, body) => {
      try {
        await body();
        this.passed += 1;
        this.results.push({ name, ok: true });
        this.log(`ok   ${name}`);
        return true;
      } catch (e) {
        this.failed += 1;
        const message = explain(e);
        this.results.push({ name, ok: false, message });
        this.log(`FAIL ${name}: ${message}`);
        await onFailure(name, e);
        if (!keepGoing) throw Object.assign(e instanceof Error ? e : new Error(String(e)), { reported: true });
        return false;
      }
    };
  }

  /** Counts and logs a failure outside the steps (set-up), unless a step reported it already. */
  fail(e) {
    if (e?.reported) return;
    this.failed += 1;
    this.log(`FAIL: ${explain(e)}`);
  }

  /** The last line, with `extraFailed` more failures than were counted. */
  summary(extraFailed = 0) {
    return `${this.label}: ${this.passed} passed, ${this.failed + extraFailed} failed`;
  }

  /** Prints the summary and exits: 0 only when something passed and nothing failed. */
  finish() {
    console.log(this.summary());
    process.exit(this.failed === 0 && this.passed > 0 ? 0 : 1);
  }

  /** Runs `main`; an error it throws ends the run as one failure. */
  main(main) {
    main().catch((e) => {
      console.error(`${this.name}: FAIL: ${explain(e)}`);
      console.log(`${this.label}: 0 passed, 1 failed`);
      process.exit(1);
    });
  }

  /**
   * Ends the process (exit code 1) after `cleanup` on SIGINT or SIGTERM, and
   * when the whole run takes longer than `totalMs`: then `before()`,
   * `cleanup()`, `after()` (the reports around the clean-up). Returns the
   * timer, for clearTimeout.
   */
  abortOn(totalMs, cleanup, { before = () => {}, after = () => {} } = {}) {
    const overall = setTimeout(async () => {
      before();
      await cleanup();
      after();
      process.exit(1);
    }, totalMs);
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.once(signal, async () => {
        await cleanup();
        process.exit(1);
      });
    }
    return overall;
  }
}

// -------------------------------------------------------------- processes

/**
 * A long-running child, its stdout and stderr in `logFile`; with `detached`
 * (the default) in its own process group, which stop() signals as a whole.
 */
export class Service {
  constructor(name, cmd, args, { logFile, env = {}, cwd = ROOT, detached = true }) {
    Object.assign(this, { name, cmd, args, env, cwd, logFile, detached });
  }

  start() {
    const out = createWriteStream(this.logFile);
    this.child = spawn(this.cmd, this.args, {
      cwd: this.cwd,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.detached,
    });
    this.child.stdout.pipe(out);
    this.child.stderr.pipe(out);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.status = { code, signal };
        resolve();
      });
      this.child.once('error', (e) => {
        this.status = { error: e.message };
        resolve();
      });
    });
    return this;
  }

  get running() {
    return this.child && !this.status;
  }

  /** Throws when the service died (for start-up polls). */
  alive() {
    if (this.child && this.status) {
      throw new Failure(`${this.name} exited (${JSON.stringify(this.status)}); last lines of ${path.relative(ROOT, this.logFile)}:\n${tail(this.logFile)}`);
    }
  }

  /**
   * Resolves with its stdout once that includes `text`; throws when it exits
   * or cannot run first, or after `timeoutMs`. Call it right after start().
   */
  printed(text, timeoutMs) {
    let stdout = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Failure(`${this.name} did not start within ${timeoutMs} ms`)), timeoutMs);
      this.child.stdout.on('data', (chunk) => {
        stdout += chunk;
        if (stdout.includes(text)) {
          clearTimeout(timer);
          resolve(stdout);
        }
      });
      this.exited.then(() => {
        clearTimeout(timer);
        const { code, signal, error } = this.status;
        reject(new Failure(error
          ? `cannot run ${this.name} ${this.cmd}: ${error}`
          : `${this.name} exited during start-up (code ${code}, signal ${signal}); see ${this.logFile}`));
      });
    });
  }

  /** SIGTERM (to the process group when detached), SIGKILL after 10 s. */
  async stop() {
    if (!this.running) return;
    const send = (signal) => {
      try {
        if (this.detached) process.kill(-this.child.pid, signal);
        else this.child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    send('SIGTERM');
    const killed = await Promise.race([this.exited.then(() => false), sleep(10_000).then(() => true)]);
    if (killed) {
      send('SIGKILL');
      await this.exited;
    }
    // Workers that outlived their master (gunicorn) share its group.
    send('SIGKILL');
  }
}

// --------------------------------------------------------------- Chromium

export function assertChromium() {
  assert(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, for Chromium's SPKI allow-list. */
export function spkiHash(certPem) {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * Headless Chromium with a persistent profile in `userDataDir`, trusting
 * exactly the certificate key `spki` (see spkiHash) besides the usual roots,
 * with `flags` after the common ones; playwright's timeouts are `stepTimeoutMs`.
 * Resolves with the context and its first page.
 */
export async function launchChromium(userDataDir, { spki, flags = [], startupTimeoutMs, stepTimeoutMs }) {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...flags, `--ignore-certificate-errors-spki-list=${spki}`, ...EXTRA_FLAGS],
    viewport: { width: 1280, height: 1100 },
    timeout: startupTimeoutMs,
  });
  try {
    context.setDefaultTimeout(stepTimeoutMs);
    context.setDefaultNavigationTimeout(stepTimeoutMs);
    const page = context.pages()[0] ?? (await context.newPage());
    return { context, page };
  } catch (e) {
    await context.close().catch(() => {});
    throw e;
  }
}

/**
 * The URL and text the iframe named "tool" shows (the first `limit`
 * characters of its text), for a failure report; undefined without such an
 * iframe, `unreadable` when it cannot be read.
 */
export function toolFrameText(page, { limit, unreadable = null } = {}) {
  return page
    ?.frame({ name: 'tool' })
    ?.evaluate((n) => `${location.href}\n${(document.body?.innerText ?? '').slice(0, n ?? undefined)}`, limit ?? null)
    .catch(() => unreadable);
}
