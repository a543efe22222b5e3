/**
 * Development secrets: used outside production only when no API key and no JWT key of any kind is
 * configured (the zero-setting first run), so `npm start` works on a fresh clone. They are public
 * (they are in this file), so production refuses to start with them.
 */
export const DEV_API_KEY = 'pushcast-dev-api-key-do-not-use-in-production';
/** Development JWT secret (HS256), see {@link DEV_API_KEY}. */
export const DEV_JWT_SECRET = 'pushcast-dev-jwt-secret-do-not-use-in-production';

/**
 * Every API key and JWT secret that appears in this repository's examples and docs: they are
 * public, so production refuses them (as API keys and as the JWT secret alike). A unit test scans
 * the example files (config/example.json, README.md, the k8s secret examples, bench/) and fails on
 * any secret-looking value missing here.
 */
export const EXAMPLE_SECRETS: ReadonlySet<string> = new Set([
  DEV_API_KEY,
  DEV_JWT_SECRET,
  // config/example.json
  'replace-with-a-long-random-key-1',
  'replace-with-a-long-random-key-2',
  'replace-with-a-long-random-key-3',
  // README.md (config-file example)
  'a-long-random-secret-key',
  // k8s/base/secret.example.yaml
  'replace-with-a-long-random-api-key',
  'replace-with-a-random-secret-of-at-least-32-characters',
  // k8s/overlays/dev/secret.yaml
  'dev-cluster-api-key-0123456789',
  'dev-cluster-jwt-secret-0123456789abcdef',
  // bench/run.ts
  'bench-api-key-0123456789abcdef',
  'bench-jwt-secret-0123456789abcdef-0123456789',
]);
