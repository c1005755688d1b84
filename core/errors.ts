/**
 * An error that is a value with a stable `code` and a one-line `message` for people (CLI, chat
 * reply); `cause` keeps the full detail for the log.
 */
export class SupportbotError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SupportbotError';
  }
}
