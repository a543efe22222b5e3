#!/usr/bin/env node
// Makes sure the real servers and tools the test suite drives (redis-server, nginx, chromium,
// openssl, curl) are installed.
// The suite never mocks them, so a missing binary must fail loudly here rather than as an obscure
// ENOENT deep inside a test. Plain Node ESM with no dependencies so it runs before `npm ci`.
import { spawnSync } from 'node:child_process';
// Explicit imports: the repo's ESLint config declares no Node globals for .mjs files.
import console from 'node:console';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import process from 'node:process';

const MIN_REDIS_MAJOR = 7;

/** Tools the suite needs: binary name, Debian package, and extra places to look beyond PATH. */
const TOOLS = [
  { bin: 'redis-server', pkg: 'redis-server', extraDirs: ['/usr/bin', '/usr/sbin'] },
  // nginx lives in /usr/sbin, which is not on PATH for non-root users on Debian.
  { bin: 'nginx', pkg: 'nginx', extraDirs: ['/usr/sbin'] },
  { bin: 'chromium', pkg: 'chromium', extraDirs: ['/usr/bin'] },
  // The README's webhook verification recipe is run as written (webhook-verify-recipe.test.ts).
  { bin: 'openssl', pkg: 'openssl', extraDirs: ['/usr/bin'] },
  { bin: 'curl', pkg: 'curl', extraDirs: ['/usr/bin'] },
];

/** Returns the absolute path of an executable named `bin`, or undefined. */
function findBin(bin, extraDirs = []) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, bin);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return undefined;
}

function missingTools() {
  return TOOLS.filter((t) => findBin(t.bin, t.extraDirs) === undefined);
}

function fail(message) {
  console.error(message);
  process.exit(1);
}

/** Runs a command with inherited stdio and exits the script if it fails. */
function run(cmd, args, env = process.env) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', env });
  if (res.error) fail(`pushcast: failed to run ${cmd}: ${res.error.message}`);
  if (res.status !== 0) fail(`pushcast: '${cmd} ${args.join(' ')}' exited with ${res.status}`);
}

let missing = missingTools();
if (missing.length > 0) {
  const pkgs = missing.map((t) => t.pkg);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const aptGet = findBin('apt-get', ['/usr/bin']);
  if (!isRoot || aptGet === undefined) {
    fail(
      `pushcast tests need ${pkgs.join(', ')}: run  ` +
        `sudo apt-get update && sudo apt-get install -y ${pkgs.join(' ')}`,
    );
  }
  console.log(`pushcast: installing ${pkgs.join(', ')} with apt-get`);
  run(aptGet, ['update']);
  run(aptGet, ['install', '-y', ...pkgs], { ...process.env, DEBIAN_FRONTEND: 'noninteractive' });
  missing = missingTools();
  if (missing.length > 0) {
    fail(`pushcast: still missing after apt-get install: ${missing.map((t) => t.bin).join(', ')}`);
  }
}

// The suite targets Redis 7; Debian 11 ships 6.0, so an old distro must fail here with a clear
// message instead of producing confusing test failures later.
const redisBin = findBin('redis-server', TOOLS[0].extraDirs);
const versionRes = spawnSync(redisBin, ['--version'], { encoding: 'utf8' });
const versionMatch = /v=(\d+)\.(\d+)\.(\d+)/.exec(versionRes.stdout ?? '');
if (versionMatch === null) {
  fail(`pushcast: could not parse '${redisBin} --version' output: ${versionRes.stdout ?? ''}`);
}
if (Number(versionMatch[1]) < MIN_REDIS_MAJOR) {
  fail(
    `pushcast tests need redis-server >= ${MIN_REDIS_MAJOR}, found ${versionMatch.slice(1).join('.')} ` +
      `at ${redisBin}`,
  );
}

console.log(`tools: ${TOOLS.map((t) => t.bin).join(', ')} present`);
