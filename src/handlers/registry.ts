/**
 * The set of actions this process can run: the built-ins, then the modules of the handlers
 * folder (a module with a built-in's name replaces it). TypeScript modules are loaded through
 * tsx, so users drop `.ts` files in without a build step.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../core/errors.js';
import { BUILTIN_HANDLERS, fallback } from './builtin.js';
import { NOT_A_HANDLER, parseHandlerOptions, type HandlerDefinition, type TaskHandler } from './handler.js';

const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);
const ACTION_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export class HandlerRegistry {
  private readonly handlers = new Map<string, HandlerDefinition>();

  constructor(
    definitions: readonly HandlerDefinition[] = BUILTIN_HANDLERS,
    /** When true, actions without a handler are refused instead of getting the fallback. */
    readonly strict = false,
  ) {
    for (const d of definitions) this.register(d);
  }

  register(definition: HandlerDefinition): void {
    this.handlers.set(definition.action, definition);
  }

  /** The handler for `action`: its own, the fallback, or undefined in strict mode. */
  resolve(action: string): HandlerDefinition | undefined {
    return this.handlers.get(action) ?? (this.strict ? undefined : fallback);
  }

  actions(): string[] {
    return [...this.handlers.keys()].sort();
  }

  all(): HandlerDefinition[] {
    return [...this.handlers.values()];
  }
}

function isModuleFile(file: string): boolean {
  const name = basename(file);
  if (name.startsWith('.') || name.startsWith('_') || name.endsWith('.d.ts')) return false;
  if (/\.(test|spec)\.[cm]?[jt]s$/.test(name)) return false;
  return MODULE_EXTENSIONS.has(extname(name));
}

async function importModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (/\.[cm]?ts$/.test(file)) {
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(url)) as Record<string, unknown>;
}

function toDefinition(file: string, exported: unknown): HandlerDefinition {
  const fromFile = basename(file).replace(/\.[^.]+$/, '');
  // A CommonJS or tsx-compiled module may nest the default export one level deeper.
  let value = exported;
  if (value && typeof value === 'object' && 'default' in value && !('handle' in value)) {
    value = (value as { default: unknown }).default;
  }
  let definition: HandlerDefinition;
  if (typeof value === 'function') definition = { action: fromFile, handle: value as TaskHandler };
  else if (value && typeof value === 'object') {
    const options = parseHandlerOptions(`handler ${file}`, value);
    definition = { ...options, action: options.action ?? fromFile };
  } else {
    throw new ConfigError(`handler ${file}: ${NOT_A_HANDLER}`);
  }
  if (!ACTION_PATTERN.test(definition.action)) {
    throw new ConfigError(
      `handler ${file}: action "${definition.action}" must be 1-128 letters, digits or _ . : -`,
    );
  }
  return definition;
}

/** Loads every handler module of `folder` into the registry. */
export async function loadHandlersFolder(registry: HandlerRegistry, folder: string): Promise<string[]> {
  const dir = resolve(folder);
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a folder');
    entries = readdirSync(dir).sort();
  } catch (err) {
    throw new ConfigError(
      `--handlers (TASKQ_HANDLERS): cannot read folder ${folder}: ${(err as Error).message}`,
    );
  }
  const loaded: string[] = [];
  for (const entry of entries.filter(isModuleFile)) {
    const file = join(dir, entry);
    let mod: Record<string, unknown>;
    try {
      mod = await importModule(file);
    } catch (err) {
      throw new ConfigError(`handler ${file} failed to load: ${(err as Error).message.split('\n')[0]}`);
    }
    const definition = toDefinition(file, mod.default ?? mod);
    registry.register(definition);
    loaded.push(definition.action);
  }
  return loaded;
}
