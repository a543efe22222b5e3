/**
 * Development secrets: used when no key is configured outside production, so `npm start` works on
 * a fresh clone. They are public (they are in this file), so production refuses to start with them.
 */
export const DEV_API_KEY = 'pushcast-dev-api-key-do-not-use-in-production';
/** Development JWT secret (HS256), see {@link DEV_API_KEY}. */
export const DEV_JWT_SECRET = 'pushcast-dev-jwt-secret-do-not-use-in-production';
