#!/usr/bin/env node
// The CLI runs from the build (npm run build); `npm start` builds first.
import '../dist/cli/index.js';
