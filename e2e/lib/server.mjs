// Starts the real pulseguardian binary on a free loopback port with a fresh database.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START_DEADLINE_MS = 60_000;
const POLL_MS = 100;
const STOP_DEADLINE_MS = 15_000;

export function binaryPath() {
  return path.resolve(E2E_DIR, process.env.PULSEGUARDIAN_BIN ?? '../target/debug/pulseguardian');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {{env?: Record<string,string>, args?: string[], keepTmp?: boolean}} [opts]
 *   env: extra environment (wins over the defaults); args: extra arguments after `serve`.
 * @returns {Promise<{url: string, port: number, tmpdir: string, stdout: () => string,
 *   stderr: () => string, stop: () => Promise<number|null>}>}
 */
export async function startServer(opts = {}) {
  const bin = binaryPath();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const tmpdir = await mkdtemp(path.join(os.tmpdir(), 'pg-e2e-'));
  const env = {
    ...process.env,
    BIND: `127.0.0.1:${port}`,
    PUBLIC_URL: url,
    DATABASE_URL: `sqlite://${tmpdir}/pg.db?mode=rwc`,
    ARCHIVE_DIR: `${tmpdir}/archive`,
    LOG_FORMAT: 'json',
    ...(opts.env ?? {}),
  };

  const child = spawn(bin, ['serve', ...(opts.args ?? [])], {
    env,
    cwd: tmpdir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.on('error', (e) => {
      exited = { code: null, signal: null, error: e };
      err += `\n[spawn error] ${e.message}`;
      resolve(exited);
    });
  });

  const cleanup = async () => {
    if (!opts.keepTmp) await rm(tmpdir, { recursive: true, force: true });
  };
  const logs = () => `--- stderr ---\n${err.slice(-8000)}\n--- stdout ---\n${out.slice(-8000)}`;

  const deadline = Date.now() + START_DEADLINE_MS;
  for (;;) {
    if (exited) {
      await cleanup();
      throw new Error(`${bin} serve exited before it was healthy (${JSON.stringify(exited.code ?? exited.signal)})\n${logs()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exitPromise;
      await cleanup();
      throw new Error(`${bin} serve was not healthy within ${START_DEADLINE_MS / 1000} s\n${logs()}`);
    }
    await sleep(POLL_MS);
  }

  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      await cleanup();
      return exited?.code ?? null;
    })();
    return stopping;
  };

  return { url, port, tmpdir, stdout: () => out, stderr: () => err, stop };
}
