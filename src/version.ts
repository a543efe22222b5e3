import { readFileSync } from 'node:fs';

/** pushcast's version, from package.json (two levels up from both src/ and dist/ files). */
export const VERSION: string = (() => {
  try {
    return (
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return '0.0.0';
  }
})();
