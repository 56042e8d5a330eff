/**
 * `outrigger install` / `outrigger uninstall`: put the binary and its link names under a prefix,
 * merge our entries into containerd's config.toml (backup first, diff shown), and record all of it
 * in a manifest so uninstall reverses exactly that.
 */
import { DEFAULT_LOG_DIR } from '../containerd-config/entries.ts';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type ContainerdMajor, type ProcessorName, RUNTIME_TYPE, runtimeOptionsPathFor, runtimeOptionsToml } from '../containerd-config/entries.ts';
import { merge, unmerge } from '../containerd-config/merge.ts';
import { unifiedDiff } from '../containerd-config/unified-diff.ts';
import { LINK_ALIASES, TOOL_NAME } from '../cli/invocation.ts';
import { type InstallManifest, manifestPath, readManifest, writeManifest } from './manifest.ts';

export interface InstallOptions {
  readonly prefix: string;
  readonly containerdConfig: string;
  readonly dryRun: boolean;
  readonly runtimeName: string;
  readonly processors: readonly ProcessorName[];
  /** The outrigger binary to copy (the running SEA). */
  readonly sourceBinary: string;
  /** For a config file without `version`: the node's containerd major. */
  readonly containerdMajor?: ContainerdMajor;
  /** Where processors log (default /var/log). */
  readonly logDir?: string;
  /** Clock for backup names (tests pin it). */
  readonly now?: () => Date;
}

export interface StepReport {
  readonly lines: string[];
  /** Whether the config file changed (or would, on a dry run). */
  readonly configChanged: boolean;
  readonly diff: string;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function sha256(file: string): string | undefined {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Writes via a temp file and rename, keeping the old file's mode. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.outrigger-tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/** mkdir -p that reports the directories it made, outermost first. */
function makeDirs(dir: string, created: string[]): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    fs.mkdirSync(d, { mode: 0o755 });
    created.push(d);
  }
}

function backupName(config: string, now: Date): string {
  const base = `${config}.outrigger-backup-${timestamp(now)}`;
  let name = base;
  for (let n = 1; fs.existsSync(name); n++) name = `${base}.${n}`;
  return name;
}

export function linkNames(): string[] {
  return Object.keys(LINK_ALIASES);
}

export function install(opts: InstallOptions): StepReport {
  const prefix = path.resolve(opts.prefix);
  const configPath = path.resolve(opts.containerdConfig);
  const now = (opts.now ?? (() => new Date()))();
  const lines: string[] = [];
  const previous = readManifest(prefix);
  if (previous && path.resolve(previous.containerdConfig.path) !== configPath) {
    throw new Error(
      `${prefix} was installed against ${previous.containerdConfig.path}, not ${configPath}; run 'outrigger uninstall --prefix ${prefix}' first`,
    );
  }

  // Config first: a file we cannot merge stops everything before anything is written.
  const before = readIfExists(configPath);
  const runtimeOptionsPath = runtimeOptionsPathFor(prefix);
  const merged = merge(before ?? '', configPath, {
    prefix,
    processors: opts.processors,
    runtimeName: opts.runtimeName,
    runtimeOptionsPath,
    ...(opts.containerdMajor ? { containerdMajor: opts.containerdMajor } : {}),
    ...(opts.logDir !== undefined ? { logDir: path.resolve(opts.logDir) } : {}),
  });
  const configChanged = merged.text !== (before ?? '') || before === undefined;
  const diff = unifiedDiff(before ?? '', merged.text, before === undefined ? '/dev/null' : configPath, configPath);

  const binDir = path.join(prefix, 'bin');
  const target = path.join(binDir, TOOL_NAME);
  const sourceReal = fs.realpathSync(opts.sourceBinary);
  const binaryCurrent = sha256(sourceReal) === sha256(target);
  const optionsText = runtimeOptionsToml({ binaryName: 'runc', systemdCgroup: merged.runcSystemdCgroup });

  if (opts.dryRun) {
    lines.push(`dry run: nothing written`);
    lines.push(binaryCurrent ? `${target}: already this binary` : `would copy ${sourceReal} -> ${target}`);
    for (const name of linkNames()) lines.push(`would link ${path.join(binDir, name)} -> ${TOOL_NAME}`);
    lines.push(readIfExists(runtimeOptionsPath) === undefined ? `would write ${runtimeOptionsPath}` : `${runtimeOptionsPath}: exists, would be kept`);
    lines.push(configChanged ? `would change ${configPath}:` : `${configPath}: already up to date`);
    return { lines, configChanged, diff };
  }

  const created = [...(previous?.created ?? [])];
  const createdDirs = [...(previous?.createdDirs ?? [])];
  const record = (file: string): void => {
    if (!created.includes(file)) created.push(file);
  };
  makeDirs(binDir, createdDirs);
  if (!binaryCurrent) {
    // Copy beside the target then rename: a running shim keeps its old inode.
    const tmp = `${target}.outrigger-tmp-${process.pid}`;
    fs.copyFileSync(sourceReal, tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, target);
    lines.push(`installed ${target}`);
  } else {
    lines.push(`${target}: already this binary`);
  }
  record(target);
  for (const name of linkNames()) {
    const link = path.join(binDir, name);
    let existing: string | undefined;
    try {
      existing = fs.readlinkSync(link);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL') throw new Error(`${link} exists and is not a symlink; move it away (install never overwrites other files)`);
      if (code !== 'ENOENT') throw err;
    }
    if (existing === undefined) {
      fs.symlinkSync(TOOL_NAME, link);
      lines.push(`linked ${link} -> ${TOOL_NAME}`);
    } else if (existing !== TOOL_NAME && existing !== target) {
      throw new Error(`${link} is a symlink to ${existing}, not to outrigger; remove it first`);
    }
    record(link);
  }
  makeDirs(path.dirname(runtimeOptionsPath), createdDirs);
  // The processors open --log-file for appending and fail the layer if its directory is missing.
  // Not recorded for uninstall: the logs in it are the operator's to keep.
  makeDirs(opts.logDir !== undefined ? path.resolve(opts.logDir) : DEFAULT_LOG_DIR, []);
  // An existing options file is the operator's choice (e.g. BinaryName = "crun"): never rewritten.
  if (readIfExists(runtimeOptionsPath) === undefined) {
    fs.writeFileSync(runtimeOptionsPath, optionsText, { mode: 0o644 });
    lines.push(`wrote ${runtimeOptionsPath}`);
    record(runtimeOptionsPath);
  } else {
    lines.push(`${runtimeOptionsPath}: exists, kept as it is`);
  }

  const backups = [...(previous?.containerdConfig.backups ?? [])];
  if (configChanged) {
    if (before !== undefined) {
      const backup = backupName(configPath, now);
      fs.copyFileSync(configPath, backup);
      backups.push(backup);
      lines.push(`backup of ${configPath}: ${backup}`);
      writeAtomic(configPath, merged.text, fs.statSync(configPath).mode & 0o7777);
    } else {
      makeDirs(path.dirname(configPath), createdDirs);
      writeAtomic(configPath, merged.text, 0o644);
    }
    lines.push(`merged outrigger's entries into ${configPath} (config version ${merged.configVersion})`);
    for (const r of merged.replaced) lines.push(`  replaced your ${r} (kept in the file, commented out; uninstall restores it)`);
  } else {
    lines.push(`${configPath}: already up to date, not changed`);
  }
  makeDirs(path.dirname(manifestPath(prefix)), createdDirs);
  record(manifestPath(prefix));
  const manifest: InstallManifest = {
    manifestVersion: 1,
    prefix,
    created,
    createdDirs,
    containerdConfig: { path: configPath, existedBefore: previous ? previous.containerdConfig.existedBefore : before !== undefined, backups },
  };
  writeManifest(manifest);
  if (configChanged) {
    lines.push('restart containerd to load the new config: systemctl restart containerd');
    lines.push(`then: ctr run --rm --runtime ${RUNTIME_TYPE} <image> <id> <cmd>, or a RuntimeClass with handler '${opts.runtimeName}'`);
  }
  return { lines, configChanged, diff };
}

export interface UninstallOptions {
  readonly prefix: string;
  readonly dryRun: boolean;
  readonly now?: () => Date;
}

export function uninstall(opts: UninstallOptions): StepReport {
  const prefix = path.resolve(opts.prefix);
  const manifest = readManifest(prefix);
  if (!manifest) throw new Error(`no outrigger install recorded under ${prefix} (${manifestPath(prefix)} is missing)`);
  const lines: string[] = [];
  const configPath = manifest.containerdConfig.path;
  const current = readIfExists(configPath);
  let restored = current === undefined ? undefined : unmerge(current);
  const removeConfig = !manifest.containerdConfig.existedBefore && restored === '';
  const configChanged = current !== undefined && (removeConfig || restored !== current);
  const diff = current === undefined ? '' : unifiedDiff(current, removeConfig ? '' : (restored ?? ''), configPath, removeConfig ? '/dev/null' : configPath);
  if (opts.dryRun) {
    lines.push('dry run: nothing written');
    for (const f of [...manifest.created].reverse()) lines.push(`would remove ${f}`);
    lines.push(configChanged ? `would restore ${configPath}:` : `${configPath}: nothing of outrigger's in it`);
    return { lines, configChanged, diff };
  }
  if (configChanged && current !== undefined) {
    if (removeConfig) {
      // install created this file and nothing else is in it: no backup needed.
      fs.rmSync(configPath);
      lines.push(`removed ${configPath} (install created it)`);
    } else {
      const backup = backupName(configPath, (opts.now ?? (() => new Date()))());
      fs.copyFileSync(configPath, backup);
      lines.push(`backup of ${configPath}: ${backup}`);
      writeAtomic(configPath, restored ?? '', fs.statSync(configPath).mode & 0o7777);
      lines.push(`removed outrigger's entries from ${configPath}`);
    }
  }
  restored = undefined;
  for (const file of [...manifest.created].reverse()) {
    try {
      fs.rmSync(file);
      lines.push(`removed ${file}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot remove ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  for (const dir of [...manifest.createdDirs].reverse()) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // Not empty: something else lives there now, so it stays.
    }
  }
  if (configChanged) lines.push('restart containerd to drop outrigger from its running config: systemctl restart containerd');
  return { lines, configChanged, diff };
}
