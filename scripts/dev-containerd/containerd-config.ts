/**
 * Typed options for a private containerd 1.6 and the config.toml (version 2) they produce.
 * Later work extends ContainerdConfigOptions (more CRI settings, more processors); anything not
 * modelled yet can go through `extraConfig`, which is deep-merged last.
 */
import { mergeTables, toToml, type TomlTable } from './toml.ts';

export const CRI_PLUGIN = 'io.containerd.grpc.v1.cri';

/** One `[stream_processors."<id>"]` entry (containerd 1.6 `services/server/config`). */
export interface StreamProcessorConfig {
  /** Layer media types this processor takes in. */
  accepts: string[];
  /** Media type of what it writes out. */
  returns: string;
  /** Binary; a bare name is looked up on containerd's PATH (dist/bin comes first). */
  path: string;
  args?: string[];
  env?: string[];
}

/** One `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>` table. */
export interface CriRuntimeConfig {
  /** e.g. io.containerd.runc.v2 or io.containerd.outrigger.v2 (names the shim binary). */
  runtimeType: string;
  /** The runtime's `options` table, passed to the shim (runtimeoptions for non-runc types). */
  options?: TomlTable;
  /** Other keys of the runtime table (pod_annotations, privileged_without_host_devices, ...). */
  extra?: TomlTable;
}

export interface CriOptions {
  /** Fully qualified image already imported into namespace k8s.io, with a long-running Cmd. */
  sandboxImage?: string;
  /** Extra runtimes by handler name; `runc` is always declared as well (CRI refuses otherwise). */
  runtimes?: Record<string, CriRuntimeConfig>;
  /** `registry.mirrors."<host>".endpoint`, e.g. { '127.0.0.1:5000': ['http://127.0.0.1:5000'] }. */
  registryMirrors?: Record<string, string[]>;
  /** `image_decryption.key_model`, e.g. "node". */
  imageDecryptionKeyModel?: string;
}

export interface ContainerdConfigOptions {
  /** Enable the CRI plugin; off by default because containerd starts faster without it. */
  cri?: boolean | CriOptions;
  streamProcessors?: Record<string, StreamProcessorConfig>;
  /** containerd log level; `debug` also makes it pass -debug to shims. Default `info`. */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** More plugin ids to disable. */
  disabledPlugins?: string[];
  /** Deep-merged into the generated config last (escape hatch for settings not modelled here). */
  extraConfig?: TomlTable;
}

/** Where the instance keeps everything; all below the harness's temp dir. */
export interface ContainerdPaths {
  root: string;
  state: string;
  grpcAddress: string;
  ttrpcAddress: string;
  optDir: string;
  cniBinDir: string;
  cniConfDir: string;
}

function criTable(cri: CriOptions, paths: ContainerdPaths): TomlTable {
  const runtimes: TomlTable = { runc: { runtime_type: 'io.containerd.runc.v2' } };
  for (const [name, rt] of Object.entries(cri.runtimes ?? {})) {
    runtimes[name] = { ...(rt.extra ?? {}), runtime_type: rt.runtimeType, ...(rt.options ? { options: rt.options } : {}) };
  }
  const table: TomlTable = {
    // Lowering oom_score_adj is refused on these VMs; CRI would ask -998 for the sandbox.
    restrict_oom_score_adj: true,
    // Two CRI instances must not fight over the default streaming port 10010.
    stream_server_address: '127.0.0.1',
    stream_server_port: '0',
    sandbox_image: cri.sandboxImage,
    containerd: { snapshotter: 'overlayfs', default_runtime_name: 'runc', runtimes },
    // Host-network pods need no CNI; keep CNI lookups away from the host's /etc/cni and /opt/cni.
    cni: { bin_dir: paths.cniBinDir, conf_dir: paths.cniConfDir },
  };
  if (cri.registryMirrors) {
    const mirrors: TomlTable = {};
    for (const [host, endpoint] of Object.entries(cri.registryMirrors)) mirrors[host] = { endpoint };
    table.registry = { mirrors };
  }
  if (cri.imageDecryptionKeyModel !== undefined) {
    table.image_decryption = { key_model: cri.imageDecryptionKeyModel };
  }
  return table;
}

export function containerdConfig(paths: ContainerdPaths, opts: ContainerdConfigOptions): TomlTable {
  const disabled = [...(opts.disabledPlugins ?? [])];
  const plugins: TomlTable = {
    // Its default /opt/containerd is shared with the host's containerd.
    'io.containerd.internal.v1.opt': { path: paths.optDir },
  };
  if (opts.cri) {
    plugins[CRI_PLUGIN] = criTable(opts.cri === true ? {} : opts.cri, paths);
  } else {
    disabled.push(CRI_PLUGIN);
  }
  const config: TomlTable = {
    version: 2,
    root: paths.root,
    state: paths.state,
    disabled_plugins: disabled,
    grpc: { address: paths.grpcAddress },
    ttrpc: { address: paths.ttrpcAddress },
    // An empty debug/metrics address keeps those listeners off.
    debug: { address: '', level: opts.logLevel ?? 'info' },
    metrics: { address: '' },
    plugins,
  };
  const processors = opts.streamProcessors ?? {};
  if (Object.keys(processors).length > 0) {
    const table: TomlTable = {};
    for (const [id, p] of Object.entries(processors)) {
      table[id] = { accepts: p.accepts, returns: p.returns, path: p.path, args: p.args ?? [], ...(p.env ? { env: p.env } : {}) };
    }
    config.stream_processors = table;
  }
  return opts.extraConfig ? mergeTables(config, opts.extraConfig) : config;
}

export function containerdConfigToml(paths: ContainerdPaths, opts: ContainerdConfigOptions): string {
  return toToml(containerdConfig(paths, opts));
}
