/**
 * ocicrypt stores every binary value (options JSON `[]byte` fields, annotation blobs) as Go's
 * `base64.StdEncoding`: standard alphabet, `=` padding. Go rejects base64url and missing padding,
 * and so do we, so that what we accept is exactly what skopeo/containerd would (imgcrypt.md §7.10).
 */
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function encodeStdBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Decodes standard padded base64; `what` names the value in the error. */
export function decodeStdBase64(text: string, what: string): Buffer {
  if (!STD_BASE64.test(text)) {
    const hint = /[-_]/.test(text) ? ' (it looks like base64url, which ocicrypt does not accept)' : '';
    throw new Error(`${what}: not standard padded base64${hint}`);
  }
  return Buffer.from(text, 'base64');
}
