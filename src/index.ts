/** pushcast's embedding API. */
export {
  createPushServer,
  type PushServer,
  type PushServerOptions,
  type PushInput,
} from './server.js';
export { loadConfig, buildConfig, ConfigError, type LoadedConfig } from './config/load.js';
export type { Config, ConfigInput } from './config/schema.js';
export type * from './auth/hooks.js';
export { PushcastError, errorCatalogue, type ErrorCode } from './errors.js';
export type { ChannelMessage } from './delivery/message.js';
export { signWebhook, verifyWebhook } from './webhooks/signature.js';
export type { WebhookEvent, WebhookEventName } from './webhooks/events.js';
export type { PushResult } from './delivery/pipeline.js';
