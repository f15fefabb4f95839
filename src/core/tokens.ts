/**
 * Scoped API tokens (docs/security.md). A token has a name (what the audit log records, never
 * the secret) and scopes:
 *
 *   read     every GET: tasks, stats, actions, schedules, nodes, operations, /meta, /metrics
 *   enqueue  read, and POST /tasks, /tasks/batch
 *   operate  read, and retry, cancel, pause, resume, run a schedule now, bulk retry and cancel
 *   admin    everything: the above, bulk delete and GET /audit
 *
 * So `read` is below `enqueue` and `operate`, which are side by side (an operator does not
 * enqueue, a producer does not retry), and `admin` is above both.
 *
 * The grammar of `--tokens` / TASKQ_TOKENS and of a `--tokens-file`: entries
 * `NAME:SCOPE[,SCOPE...]:SECRET` separated by whitespace, newlines or `;`; in the file, a line
 * whose first character (after blanks) is `#` is a comment. NAME is 1 to 64 of `A-Z a-z 0-9 _ . -`;
 * SECRET is everything after the second colon, at least TOKEN_SECRET_MIN characters. Names and
 * secrets are unique. Any bad entry is a ConfigError naming where it was and which entry (by
 * position, never echoing a secret).
 */
import { ConfigError } from './errors.js';

export const SCOPES = ['read', 'enqueue', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scopes each scope grants, itself included. */
const IMPLIES: Record<Scope, readonly Scope[]> = {
  read: ['read'],
  enqueue: ['read', 'enqueue'],
  operate: ['read', 'operate'],
  admin: SCOPES,
};

export const TOKEN_SECRET_MIN = 8;
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** The name the old single `--api-token` goes by: an admin token. */
export const API_TOKEN_NAME = 'api-token';

export interface ApiToken {
  readonly name: string;
  /** Every scope it has, implied ones included, in SCOPES order. */
  readonly scopes: readonly Scope[];
  readonly secret: string;
}

function isScope(text: string): text is Scope {
  return (SCOPES as readonly string[]).includes(text);
}

/** The scopes `granted` amount to, implied ones included, in SCOPES order. */
export function expandScopes(granted: readonly Scope[]): Scope[] {
  const all = new Set(granted.flatMap((s) => IMPLIES[s]));
  return SCOPES.filter((s) => all.has(s));
}

/** True when a token with `scopes` (as expandScopes gives them) may do what `needed` guards. */
export function allows(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes(needed);
}

/** Removes the file's comment lines; the rest follows the one grammar. */
function withoutComments(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n');
}

/** One entry, `NAME:SCOPES:SECRET`; `where` says which, for the error. */
function parseEntry(entry: string, where: string): ApiToken {
  const first = entry.indexOf(':');
  const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
  if (second < 0) throw new ConfigError(`${where}: expected NAME:SCOPE[,SCOPE...]:SECRET`);
  const name = entry.slice(0, first);
  const scopeList = entry.slice(first + 1, second);
  const secret = entry.slice(second + 1);
  if (!TOKEN_NAME_PATTERN.test(name))
    throw new ConfigError(`${where}: the name must be 1 to 64 of A-Z a-z 0-9 _ . -`);
  const scopes: Scope[] = [];
  for (const scope of scopeList.split(',')) {
    if (!isScope(scope))
      throw new ConfigError(`${where} (${name}): "${scope}" is not a scope (${SCOPES.join(', ')})`);
    scopes.push(scope);
  }
  if (secret.length < TOKEN_SECRET_MIN)
    throw new ConfigError(`${where} (${name}): the secret must be at least ${TOKEN_SECRET_MIN} characters`);
  return { name, scopes: expandScopes(scopes), secret };
}

/**
 * The tokens of one source (`--tokens` text or a file's content); `source` names it in errors,
 * e.g. `--tokens (TASKQ_TOKENS)`.
 */
export function parseTokens(text: string, source: string): ApiToken[] {
  const entries = withoutComments(text)
    .split(/[\s;]+/)
    .filter((e) => e !== '');
  if (entries.length === 0) throw new ConfigError(`${source}: no tokens`);
  return entries.map((entry, i) => parseEntry(entry, `${source}: entry ${i + 1}`));
}

/**
 * Every token the service accepts: the old `--api-token` as the admin token "api-token", then
 * the `--tokens` and `--tokens-file` ones. Names and secrets must be unique across all of them.
 */
export function combineTokens(sources: {
  apiToken?: string;
  tokens?: readonly ApiToken[];
  fileTokens?: readonly ApiToken[];
}): ApiToken[] {
  const all: ApiToken[] = [
    ...(sources.apiToken === undefined
      ? []
      : [{ name: API_TOKEN_NAME, scopes: expandScopes(['admin']), secret: sources.apiToken }]),
    ...(sources.tokens ?? []),
    ...(sources.fileTokens ?? []),
  ];
  const names = new Set<string>();
  const secrets = new Set<string>();
  for (const token of all) {
    if (names.has(token.name)) throw new ConfigError(`tokens: the name "${token.name}" is given twice`);
    if (secrets.has(token.secret))
      throw new ConfigError(`tokens: "${token.name}" has the same secret as another token`);
    names.add(token.name);
    secrets.add(token.secret);
  }
  return all;
}
