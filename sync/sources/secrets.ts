/**
 * Secrets in source configs: a value may be a literal or hold environment references,
 * `${NAME}` (the whole value or part of it, e.g. `${ZENDESK_EMAIL}/token`), so that the config
 * file can be committed while tokens stay in the environment (`deploy/.env`).
 */
import { SupportbotError } from '../../core/errors.ts';

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replaces every `${NAME}` in `value` with `env[NAME]`. `$${NAME}` is left as the literal text
 * `${NAME}` (an escape for values that really contain it).
 *
 * @param what names the setting in errors (`source "zendesk" apiToken`); never the value.
 * @throws SupportbotError `secret-missing` when a referenced variable is unset or empty.
 */
export function resolveSecret(value: string, what: string, env: NodeJS.ProcessEnv = process.env): string {
  return value.replace(/\$?\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (match, name: string) => {
    if (match.startsWith('$$')) return match.slice(1);
    const resolved = env[name];
    if (resolved === undefined || resolved === '') {
      throw new SupportbotError('secret-missing', `${what} refers to \${${name}}, which is not set`);
    }
    return resolved;
  });
}

/** True when `value` holds at least one `${NAME}` reference. */
export function isSecretReference(value: string): boolean {
  REFERENCE.lastIndex = 0;
  return REFERENCE.test(value);
}
