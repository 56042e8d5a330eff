/**
 * OCI content descriptors and platforms as they appear in image-layout index.json, image
 * indexes and manifests (image-spec descriptor.md). Unknown fields are kept so a tool that
 * rewrites a descriptor passes them through.
 */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  [key: string]: unknown;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  [key: string]: unknown;
}
