/** Adds settings from the one settings table (core/config.ts) to a command as flags. */
import type { Command } from 'commander';
import { SETTINGS, resolveConfig, type Config, type ConfigInput } from '../core/config.js';

export function addSettings(command: Command, keys: (keyof Config)[]): Command {
  for (const key of keys) {
    const spec = SETTINGS.find((s) => s.key === key);
    if (!spec) throw new Error(`no setting ${key}`);
    const placeholder = spec.kind.type === 'bool' ? '' : ` <${spec.kind.type === 'int' ? 'n' : 'value'}>`;
    const fallback = spec.default === undefined ? '' : `; default ${JSON.stringify(spec.default)}`;
    command.option(
      `${spec.flag}${placeholder}`,
      `${spec.description} [env ${spec.env.join(', ')}${fallback}]`,
    );
  }
  return command;
}

/** Resolves a command's parsed flags against the environment and defaults. */
export function configFrom(options: Record<string, unknown>): Readonly<Config> {
  const input: ConfigInput = {};
  for (const spec of SETTINGS) {
    const value = options[spec.key];
    if (value !== undefined) input[spec.key] = value as string | boolean;
  }
  return resolveConfig(input);
}
