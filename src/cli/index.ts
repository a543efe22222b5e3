import { runCli } from './main.js';

// -1: a long-running command (serve) that owns the process from here.
const code = await runCli(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
