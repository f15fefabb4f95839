/**
 * The settings of the one settings table (core/config.ts) as a command's flags: added with their
 * env vars and defaults in --help, and read back into a resolved config.
 */
import { Option, type Command } from 'commander';
import {
  SETTINGS,
  SETTING_KEYS,
  resolveConfig,
  type Config,
  type ConfigInput,
  type SettingKey,
} from '../core/config.js';

/** The settings of `taskq run`: every one but those of the producer commands. */
export const SERVICE_SETTINGS: readonly SettingKey[] = SETTING_KEYS.filter(
  (key) => SETTINGS[key].scope === 'service',
);

function optionOf(key: SettingKey): Option {
  const spec = SETTINGS[key];
  const flags = spec.kind.placeholder === '' ? spec.flag : `${spec.flag} ${spec.kind.placeholder}`;
  const fallback = spec.default === undefined ? '' : `; default ${JSON.stringify(spec.default)}`;
  return new Option(flags, `${spec.description} [env ${spec.env.join(', ')}${fallback}]`);
}

export function addSettings(command: Command, keys: readonly SettingKey[]): Command {
  for (const key of keys) command.addOption(optionOf(key));
  return command;
}

/**
 * Resolves a command's parsed flags against the environment and defaults. Commander names a
 * flag's value after the flag (`--retention-completed` → `retentionCompleted`), not after the
 * setting (`retentionCompletedMs`), so each is looked up under the name commander gives it.
 */
export function configFrom(options: Record<string, unknown>): Readonly<Config> {
  const input: ConfigInput = {};
  for (const key of SETTING_KEYS) {
    const value = options[optionOf(key).attributeName()];
    if (typeof value === 'string' || typeof value === 'boolean') input[key] = value;
  }
  return resolveConfig(input);
}
