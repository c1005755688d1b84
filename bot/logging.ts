import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * Log fields never written as they are: credentials (tokens, keys, secrets, authorization
 * headers) and what people typed (questions and message text, which carry names, emails and
 * account details). pino's `redact` paths (https://getpino.io/#/docs/redaction): top level and
 * one object down (`*.x`), e.g. `{ err: { config: { headers: { authorization } } } }` is covered
 * by `*.headers.authorization`.
 */
export const REDACTED_FIELDS = [
  'token',
  'botToken',
  'appToken',
  'apiToken',
  'apiKey',
  'api_key',
  'password',
  'secret',
  'signingSecret',
  'authorization',
  'cookie',
  'question',
  'text',
  'email',
];

const REDACT_PATHS = [
  ...REDACTED_FIELDS,
  ...REDACTED_FIELDS.map((f) => `*.${f}`),
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * The bot's logger: JSON lines (pino) to `destination` (default stderr), with credentials and
 * user text replaced by `[redacted]`.
 */
export function createLogger(level: string, destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ level, base: undefined, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}
