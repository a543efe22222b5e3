import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';

/**
 * What `npm start`, the Dockerfile and package users run is the build, not the TypeScript
 * sources the other tests load through tsx: build it and run that.
 */
describe('the build', () => {
  it('compiles, and dist/main.js, the pushcast bin and the package exports all work', async () => {
    execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'pipe', timeout: 120_000 });
    for (const file of [
      'dist/main.js',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/client/index.d.ts',
      'dist/client/pushcast-client.js',
    ])
      expect(existsSync(file), file).toBe(true);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
      bin: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe('node dist/main.js');
    expect(readFileSync('Dockerfile', 'utf8')).toContain('CMD ["node", "dist/main.js"]');

    // The package by its own name, as an app would import it.
    const exportsOut = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const s = await import('pushcast'); const c = await import('pushcast/client'); console.log(typeof s.createPushServer, typeof c.createClient)",
      ],
      { encoding: 'utf8' },
    );
    expect(exportsOut.trim()).toBe('function function');

    // The bin, from the build.
    const token = execFileSync(process.execPath, [pkg.bin.pushcast!, 'token', '--sub', 'b'], {
      encoding: 'utf8',
    });
    expect(token.trim().split('.')).toHaveLength(3);

    // The server, from the build, with no settings (what `npm start` runs after building).
    const port = await freePort();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['dist/main.js'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner: ${out}`)), 15_000);
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('Development API key:')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 180_000);
});
