/**
 * Why a path cannot hold the SQLite database, found before mkdir or SQLite touch it, in words a
 * user can act on.
 *
 * Left to SQLite, such paths fail with "unable to open database file" or "disk I/O error", and
 * some are written to first: /dev/null gets a /dev/null-journal beside it, /proc/self/fd/2 gets a
 * database written into whatever file stderr is, a new file under /dev lives in RAM on devtmpfs,
 * a folder under /sys/fs/cgroup/cpu becomes a cgroup, and a database on a read-only mount with
 * its -wal and -shm present opens read-only, so `taskq run` served on and failed every write.
 *
 * What is checked: name and path lengths, every existing ancestor being a folder, the file (if
 * any) being a regular file, the filesystem not being a kernel one (Linux: /proc/self/mountinfo),
 * and write access (access(2) reports a read-only mount even to root). What cannot be seen here
 * (a full disk, a lock held by another process) is left to SQLite, whose errors
 * `describeSqliteError` words.
 */
import { accessSync, constants, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join, parse, relative, resolve, sep } from 'node:path';

/** The longest file name Linux and macOS accept, in bytes. */
const NAME_MAX = 255;
/** SQLite's unix VFS takes full (resolved) paths of up to 512 bytes, and appends "-journal". */
export const SQLITE_PATH_MAX = 512 - '-journal'.length;

/** Kernel filesystems: they show processes, devices and settings, and do not store files. */
const KERNEL_FILESYSTEMS = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'debugfs',
  'tracefs',
  'securityfs',
  'cgroup',
  'cgroup2',
  'pstore',
  'bpf',
  'configfs',
  'efivarfs',
  'mqueue',
  'hugetlbfs',
  'fusectl',
  'binfmt_misc',
  'selinuxfs',
  'rpc_pipefs',
  'nsfs',
]);

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'folder';
  if (stats.isFile()) return 'file';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isSocket()) return 'socket';
  return 'special file';
}

function errnoReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'EROFS') return 'read-only filesystem';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return typeof code === 'string' ? code : (err as Error).message;
}

/** The type of the filesystem `path` (resolved) is on, from the mount table; null off Linux. */
function filesystemOf(path: string): string | null {
  let table: string;
  try {
    table = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return null;
  }
  let best: { point: string; type: string } | null = null;
  for (const line of table.split('\n')) {
    // "36 35 98:0 /root /mount/point options... - fstype source superoptions"
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const type = fields[dash + 1];
    if (dash < 5 || type === undefined) continue;
    const point = (fields[4] as string).replace(/\\([0-7]{3})/g, (_, octal: string) =>
      String.fromCharCode(parseInt(octal, 8)),
    );
    const within = point === '/' || path === point || path.startsWith(`${point}/`);
    // `>=`: of mounts on one point, the later one is on top.
    if (within && (best === null || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type ?? null;
}

/** "X is on proc, ..." when `path` is on a kernel filesystem. */
function kernelFilesystem(path: string, shown: string): string | null {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return null; // e.g. /proc/self/fd/N of a pipe: the check of its folder speaks for it
  }
  const type = filesystemOf(real);
  return type !== null && KERNEL_FILESYSTEMS.has(type)
    ? `${shown} is on ${type}, a kernel filesystem, not storage for files`
    : null;
}

function writable(path: string, mode: number): string | null {
  try {
    accessSync(path, mode);
    return null;
  } catch (err) {
    return errnoReason(err);
  }
}

/**
 * Why `path` cannot hold the database, as a message naming it; null when it looks usable (or
 * the reason is one only SQLite can find).
 */
export function unusablePathReason(path: string): string | null {
  const cannotUse = (reason: string) => `cannot use ${path}: ${reason}`;
  const cannotCreate = (reason: string) => `cannot create the folder of ${path}: ${reason}`;

  for (const name of path.split(sep)) {
    const bytes = Buffer.byteLength(name);
    if (bytes > NAME_MAX)
      return cannotUse(
        `the name "${name.slice(0, 20)}..." is ${bytes} bytes long; names are at most ${NAME_MAX}`,
      );
  }

  // The deepest folder that exists, checking that each ancestor on the way is one.
  const absolute = resolve(path);
  const folder = dirname(absolute);
  let existing = parse(absolute).root;
  for (const name of relative(existing, folder).split(sep).filter(Boolean)) {
    const next = join(existing, name);
    let stats: Stats | undefined;
    try {
      stats = statSync(next, { throwIfNoEntry: false });
    } catch (err) {
      return cannotCreate(`${next}: ${errnoReason(err)}`);
    }
    if (stats === undefined) break;
    if (!stats.isDirectory()) return cannotCreate(`${next} is a ${kindOf(stats)}, not a folder`);
    existing = next;
  }

  const resolved = join(realpathSync(existing), relative(existing, absolute));
  const bytes = Buffer.byteLength(resolved);
  if (bytes > SQLITE_PATH_MAX)
    return cannotUse(
      `the path is ${bytes} bytes long once resolved; SQLite takes at most ${SQLITE_PATH_MAX}`,
    );

  if (existing !== folder) {
    const kernel = kernelFilesystem(existing, existing);
    if (kernel) return cannotCreate(kernel);
    const denied = writable(existing, constants.W_OK | constants.X_OK);
    return denied ? cannotCreate(`${existing} is not writable (${denied})`) : null;
  }

  let file: Stats | undefined;
  try {
    file = statSync(absolute, { throwIfNoEntry: false });
  } catch (err) {
    return cannotUse(errnoReason(err));
  }
  if (file?.isDirectory()) return cannotUse('it is a folder, not a database file');
  if (file && !file.isFile()) return cannotUse(`it is a ${kindOf(file)}, not a regular file`);
  const kernel = kernelFilesystem(folder, folder) ?? (file ? kernelFilesystem(absolute, 'it') : null);
  if (kernel) return cannotUse(kernel);
  const fileDenied = file ? writable(absolute, constants.R_OK | constants.W_OK) : null;
  if (fileDenied) return cannotUse(`the file is not writable (${fileDenied})`);
  const folderDenied = writable(folder, constants.W_OK | constants.X_OK);
  return folderDenied
    ? cannotUse(`its folder is not writable (${folderDenied}); SQLite creates its -wal and -shm files there`)
    : null;
}

/** SQLite's error codes (and their extended forms, e.g. SQLITE_IOERR_FSYNC), in plain words. */
const SQLITE_REASONS: [prefix: string, reason: string][] = [
  ['SQLITE_CANTOPEN', 'the file cannot be opened'],
  ['SQLITE_NOTADB', 'the file is not a SQLite database'],
  ['SQLITE_CORRUPT', 'the database file is corrupt'],
  ['SQLITE_FULL', 'the disk is full'],
  ['SQLITE_READONLY', 'the database is read-only'],
  ['SQLITE_BUSY', 'another process holds the database locked'],
  ['SQLITE_IOERR', 'disk I/O error'],
  ['SQLITE_PERM', 'permission denied'],
];

/** An error from SQLite or the file system as one reason: plain words, then the original. */
export function describeSqliteError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const known =
    typeof code === 'string' ? SQLITE_REASONS.find(([prefix]) => code.startsWith(prefix)) : undefined;
  return known ? `${known[1]} (${code as string}: ${message})` : message;
}
