/**
 * The filter grammar (core/filter.ts) as command flags, defined once from FILTER_FIELDS for every
 * command that filters tasks (`taskq tasks`, `retry`, `cancel`, `delete`): `--status`,
 * `--action`, `--id`, `--data field=value` (repeatable), `--error`, `--created-after`, ... The
 * flags become the grammar's pairs, checked by the same parseFilter as the API's.
 */
import { Option, type Command } from 'commander';
import { ConfigError, QueueError } from '../core/errors.js';
import { DATA_PREFIX, FILTER_FIELDS, filterToParams, parseFilter } from '../core/filter.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addFilterFlags(command: Command): Command {
  for (const field of FILTER_FIELDS) {
    const option = new Option(field.flag, `${field.description} (e.g. ${field.example})`);
    if (field.key.startsWith(DATA_PREFIX)) option.argParser(collect);
    command.addOption(option);
  }
  return command;
}

/** The grammar's pairs of the parsed flags, checked; a bad one stops the command (exit 2). */
export function filterFromFlags(options: Record<string, unknown>): Record<string, string> {
  const pairs: Record<string, unknown> = {};
  for (const field of FILTER_FIELDS) {
    if (field.key.startsWith(DATA_PREFIX)) {
      for (const pair of (options.data as string[] | undefined) ?? []) {
        const at = pair.indexOf('=');
        if (at <= 0) throw new ConfigError(`--data: expected field=value, got "${pair}"`);
        pairs[`${DATA_PREFIX}${pair.slice(0, at)}`] = pair.slice(at + 1);
      }
      continue;
    }
    const name = new Option(field.flag).attributeName();
    if (options[name] !== undefined) pairs[field.key] = options[name];
  }
  try {
    return filterToParams(parseFilter(pairs, 'filter'));
  } catch (err) {
    if (err instanceof QueueError) throw new ConfigError(flagMessage(err.message));
    throw err;
  }
}

/** `filter/created_after must ...` in the words of the flag (`--created-after must ...`). */
function flagMessage(message: string): string {
  return message.replace(/filter\/(data\.)?([a-z_]+)/, (_, data: string | undefined, key: string) =>
    data ? `--data ${key}` : `--${key.replaceAll('_', '-')}`,
  );
}
