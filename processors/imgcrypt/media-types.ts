/**
 * Encrypted layer media types (ocicrypt spec/spec.go, imgcrypt.md §3). containerd matches a
 * processor's `accepts` by exact string and sets STREAM_PROCESSOR_MEDIATYPE to the layer's type,
 * so the decoder learns from it whether the plaintext is compressed.
 */
export const ENCRYPTED_SUFFIX = '+encrypted';

export type PlainCompression = 'none' | 'gzip' | 'zstd';

export const ENCRYPTED_LAYER_MEDIA_TYPES: Readonly<Record<string, PlainCompression>> = {
  'application/vnd.oci.image.layer.v1.tar+encrypted': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip+encrypted': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd+encrypted': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+encrypted': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip+encrypted': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd+encrypted': 'zstd',
};

export function compressionOfEncrypted(mediaType: string): PlainCompression | undefined {
  return Object.hasOwn(ENCRYPTED_LAYER_MEDIA_TYPES, mediaType) ? ENCRYPTED_LAYER_MEDIA_TYPES[mediaType] : undefined;
}

export function isEncryptedMediaType(mediaType: string): boolean {
  return mediaType.endsWith(ENCRYPTED_SUFFIX);
}

/** `…tar+gzip` → `…tar+gzip+encrypted`; Docker layer types map to their OCI equivalents as ctr-enc does. */
export function encryptedMediaType(mediaType: string): string {
  if (isEncryptedMediaType(mediaType)) throw new Error(`media type ${mediaType} is already encrypted`);
  const docker: Record<string, string> = {
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
    'application/vnd.docker.image.rootfs.diff.tar': 'application/vnd.oci.image.layer.v1.tar',
  };
  return `${docker[mediaType] ?? mediaType}${ENCRYPTED_SUFFIX}`;
}

/** `…+encrypted` → the media type of the plaintext (what skopeo writes back on decryption). */
export function decryptedMediaType(mediaType: string): string {
  if (!isEncryptedMediaType(mediaType)) throw new Error(`media type ${mediaType} is not an encrypted layer type`);
  return mediaType.slice(0, -ENCRYPTED_SUFFIX.length);
}
