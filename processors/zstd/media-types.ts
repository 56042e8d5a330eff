/**
 * Layer media types the stream processor decodes. containerd matches `accepts` by exact string
 * and sets STREAM_PROCESSOR_MEDIATYPE to the layer's type, so every type an operator may list
 * in `accepts` must be known here; the result is always a plain tar
 * (`application/vnd.oci.image.layer.v1.tar`), which is what `returns` must say.
 */
import type { Format } from './formats.ts';

export const TAR_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar';

export const LAYER_MEDIA_TYPES: Readonly<Record<string, Format>> = {
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  // Deprecated in image-spec 1.1 but still in registries.
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  // Docker schema 2 layers (gzip only; docker never defined a zstd layer type).
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

export function formatForMediaType(mediaType: string): Format | undefined {
  return Object.hasOwn(LAYER_MEDIA_TYPES, mediaType) ? LAYER_MEDIA_TYPES[mediaType] : undefined;
}
