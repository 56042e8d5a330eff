/**
 * The config.toml tables outrigger owns, per containerd major version: our [stream_processors]
 * entries and the CRI runtime handler. Layouts: config version 2 (containerd 1.6/1.7, CRI plugin
 * "io.containerd.grpc.v1.cri") and version 3 (2.x, CRI runtime plugin "io.containerd.cri.v1.runtime").
 * Stream processors are a top-level map in both.
 */
import path from 'node:path';
import { tomlHeader, tomlString } from './toml-lines.ts';

export type ContainerdMajor = '1.6' | '1.7' | '2.x';
export const CONTAINERD_MAJORS: readonly ContainerdMajor[] = ['1.6', '1.7', '2.x'];

export type ProcessorName = 'zstd' | 'gzip' | 'estargz' | 'imgcrypt';
export const PROCESSOR_NAMES: readonly ProcessorName[] = ['zstd', 'gzip', 'estargz', 'imgcrypt'];
export const DEFAULT_PROCESSORS: readonly ProcessorName[] = ['zstd', 'gzip'];

export const RUNTIME_TYPE = 'io.containerd.outrigger.v2';
export const DEFAULT_RUNTIME_NAME = 'outrigger';

const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';
const OCI_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_TAR_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export function configVersionFor(major: ContainerdMajor): 2 | 3 {
  return major === '2.x' ? 3 : 2;
}

/** Key path of the table holding CRI runtimes (`<path>.<handler>`). */
export function criRuntimesPath(configVersion: 2 | 3): string[] {
  return configVersion === 3
    ? ['plugins', 'io.containerd.cri.v1.runtime', 'containerd', 'runtimes']
    : ['plugins', 'io.containerd.grpc.v1.cri', 'containerd', 'runtimes'];
}

export type TomlEntryValue = string | boolean | number | readonly string[];

/** One table we write: its header path, its keys in order, and comment lines above it. */
export interface OwnedTable {
  readonly path: readonly string[];
  readonly keys: ReadonlyArray<readonly [string, TomlEntryValue]>;
  readonly comments?: readonly string[];
}

export interface EntryOptions {
  readonly configVersion: 2 | 3;
  /** Where the binary and links live: processors are configured by absolute path below it. */
  readonly prefix: string;
  readonly processors: readonly ProcessorName[];
  /** CRI runtime handler name (RuntimeClass handler). */
  readonly runtimeName: string;
  /** The runtime options TOML the CRI handler's ConfigPath points at. */
  readonly runtimeOptionsPath: string;
  /** Whether to declare CRI's runc runtime too (CRI refuses to load otherwise, on 1.6). */
  readonly declareRunc: boolean;
  /** Where processors append their per-layer log lines; default /var/log. */
  readonly logDir?: string;
}

export function binPath(prefix: string, name: string): string {
  return path.join(prefix, 'bin', name);
}

export function runtimeOptionsPathFor(prefix: string): string {
  return path.join(prefix, 'etc', 'outrigger', 'runtime-options.toml');
}

/** Rejects processor sets containerd would resolve at random (two ids accepting one media type). */
export function checkProcessorSet(processors: readonly ProcessorName[]): void {
  const unknown = processors.filter((p) => !PROCESSOR_NAMES.includes(p));
  if (unknown.length > 0) throw new Error(`unknown processor ${unknown.join(', ')} (choose from ${PROCESSOR_NAMES.join(', ')})`);
  if (processors.includes('gzip') && processors.includes('estargz')) {
    throw new Error(
      "processors 'gzip' and 'estargz' both accept the gzip layer media types and containerd would pick one at random per start; " +
        "choose one ('estargz' also decodes ordinary gzip layers)",
    );
  }
}

export const DEFAULT_LOG_DIR = '/var/log';

export function processorTables(prefix: string, processors: readonly ProcessorName[], logDir: string = DEFAULT_LOG_DIR): OwnedTable[] {
  const tables: OwnedTable[] = [];
  const sp = (id: string): string[] => ['stream_processors', id];
  for (const name of processors) {
    if (name === 'zstd') {
      tables.push({
        path: sp('io.containerd.outrigger.zstd.v1.tar.zstd'),
        keys: [
          ['accepts', ['application/vnd.oci.image.layer.v1.tar+zstd']],
          ['returns', OCI_TAR],
          ['path', binPath(prefix, 'outrigger-zstd')],
          ['args', ['--log-file', path.join(logDir, 'outrigger-zstd.log')]],
        ],
      });
    } else if (name === 'gzip') {
      tables.push({
        path: sp('io.containerd.outrigger.zstd.v1.tar.gzip'),
        keys: [
          ['accepts', [OCI_TAR_GZIP, DOCKER_TAR_GZIP]],
          ['returns', OCI_TAR],
          ['path', binPath(prefix, 'outrigger-zstd')],
          ['args', ['--log-file', path.join(logDir, 'outrigger-zstd.log')]],
        ],
      });
    } else if (name === 'estargz') {
      tables.push({
        path: sp('io.containerd.outrigger.estargz.v1.tar.gzip'),
        keys: [
          ['accepts', [OCI_TAR_GZIP, DOCKER_TAR_GZIP]],
          ['returns', OCI_TAR],
          ['path', binPath(prefix, 'outrigger-estargz')],
          ['args', ['unpack', '--log-file', path.join(logDir, 'outrigger-estargz.log')]],
        ],
      });
    } else {
      // Same ids as containerd's built-in ocicrypt defaults, so ours replaces them instead of
      // racing them (imgcrypt.md §1); containerd passes the decrypt payload by these ids.
      const common: Array<readonly [string, TomlEntryValue]> = [
        ['path', binPath(prefix, 'ctd-decoder')],
        ['args', ['--decryption-keys-path', '/etc/containerd/ocicrypt/keys']],
        ['env', ['OCICRYPT_KEYPROVIDER_CONFIG=/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf']],
      ];
      const note = ['ctd-decoder = outrigger imgcrypt decrypt; containerd passes the decrypt payload only to these two ids (docs/imgcrypt.md).'];
      tables.push({
        path: sp('io.containerd.ocicrypt.decoder.v1.tar.gzip'),
        comments: note,
        keys: [['accepts', ['application/vnd.oci.image.layer.v1.tar+gzip+encrypted']], ['returns', OCI_TAR_GZIP], ...common],
      });
      tables.push({
        path: sp('io.containerd.ocicrypt.decoder.v1.tar'),
        comments: note,
        keys: [['accepts', ['application/vnd.oci.image.layer.v1.tar+encrypted']], ['returns', OCI_TAR], ...common],
      });
    }
  }
  return tables;
}

export function runtimeTables(opts: EntryOptions): OwnedTable[] {
  const runtimes = criRuntimesPath(opts.configVersion);
  const tables: OwnedTable[] = [];
  if (opts.declareRunc) {
    tables.push({
      path: [...runtimes, 'runc'],
      comments: ['CRI needs runc declared once any runtime is; install adds this only when the file does not declare runc.'],
      keys: [['runtime_type', 'io.containerd.runc.v2']],
    });
  }
  tables.push({
    path: [...runtimes, opts.runtimeName],
    comments: ['Kubernetes RuntimeClass handler; ctr uses --runtime io.containerd.outrigger.v2 (shim found on containerd\'s PATH).'],
    keys: [['runtime_type', RUNTIME_TYPE]],
  });
  tables.push({
    path: [...runtimes, opts.runtimeName, 'options'],
    keys: [['ConfigPath', opts.runtimeOptionsPath]],
  });
  return tables;
}

export function ownedTables(opts: EntryOptions): OwnedTable[] {
  checkProcessorSet(opts.processors);
  return [...processorTables(opts.prefix, opts.processors, opts.logDir), ...runtimeTables(opts)];
}

/** Header paths whose tables (and subtables) we replace: everything we write except runc. */
export function ownedRoots(opts: EntryOptions): string[][] {
  const roots = processorTables(opts.prefix, opts.processors, opts.logDir).map((t) => [...t.path]);
  roots.push([...criRuntimesPath(opts.configVersion), opts.runtimeName]);
  return roots;
}

function renderValue(v: TomlEntryValue): string {
  if (typeof v === 'string') return tomlString(v);
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  return `[${v.map(tomlString).join(', ')}]`;
}

export function renderTables(tables: readonly OwnedTable[]): string {
  const parts: string[] = [];
  for (const t of tables) {
    const lines = [...(t.comments ?? []).map((c) => `# ${c}`), tomlHeader(t.path), ...t.keys.map(([k, v]) => `  ${k} = ${renderValue(v)}`)];
    parts.push(lines.join('\n'));
  }
  return parts.map((p) => `${p}\n`).join('\n');
}

/** The runtime options file the CRI handler points at (runc Options field names, flat TOML). */
export function runtimeOptionsToml(opts: { binaryName: string; systemdCgroup: boolean }): string {
  return [
    '# Runtime options for the outrigger shim (containerd.runc.v1.Options field names).',
    '# Written by `outrigger install`; removed by `outrigger uninstall`.',
    `BinaryName = ${tomlString(opts.binaryName)}`,
    `SystemdCgroup = ${opts.systemdCgroup}`,
    '',
  ].join('\n');
}

/** `outrigger config`: the snippet for a fresh file of that containerd major. */
export function configSnippet(opts: Omit<EntryOptions, 'configVersion' | 'declareRunc'> & { major: ContainerdMajor }): string {
  const configVersion = configVersionFor(opts.major);
  return `version = ${configVersion}\n\n${renderTables(ownedTables({ ...opts, configVersion, declareRunc: true }))}`;
}
