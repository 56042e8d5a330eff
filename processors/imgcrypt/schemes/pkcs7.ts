/**
 * PKCS7 key wrapping (ocicrypt keywrap/pkcs7): the private-options JSON travels as a CMS
 * EnvelopedData. The ASN.1 structures come from @peculiar/asn1-cms / asn1-x509 / asn1-rsa; this
 * module only adds the two encodings those libraries cannot express, both from Go's pkcs7
 * packages (imgcrypt.md §4):
 *  - the AES-GCM AlgorithmIdentifier parameter is a *primitive* TLV with tag 0x10 whose content
 *    is a whole DER `SEQUENCE { [4] IMPLICIT OCTET STRING nonce, INTEGER icvLen }`; Go cannot read
 *    the RFC 5084 form, so we write Go's and read both;
 *  - encryptedContent is written primitive (`80 len`, ocicrypt ≥ 1.2.1) and read in both the
 *    primitive and the constructed form (`A0 … 04 len`, older builds such as skopeo 1.9.3).
 */
import crypto from 'node:crypto';
import type { KeyObject, X509Certificate } from 'node:crypto';
import {
  ContentEncryptionAlgorithmIdentifier,
  ContentInfo,
  EncryptedContent,
  EncryptedContentInfo,
  EnvelopedData,
  IssuerAndSerialNumber,
  KeyEncryptionAlgorithmIdentifier,
  KeyTransRecipientInfo,
  RecipientIdentifier,
  RecipientInfo,
  RecipientInfos,
  id_data,
  id_envelopedData,
} from '@peculiar/asn1-cms';
import { RsaEsOaepParams, id_RSAES_OAEP, id_rsaEncryption, id_sha1, id_sha224, id_sha256, id_sha384, id_sha512 } from '@peculiar/asn1-rsa';
import { AsnConvert, AsnProp, AsnPropTypes, OctetString } from '@peculiar/asn1-schema';
import { Certificate, Name } from '@peculiar/asn1-x509';
import type { DecryptConfig, EncryptConfig, KeyWrapper, LoadedCertificate, LoadedPrivateKey } from '../key-wrapper.ts';

const AES_GCM: Readonly<Record<string, { cipher: crypto.CipherGCMTypes; keyLength: number }>> = {
  '2.16.840.1.101.3.4.1.6': { cipher: 'aes-128-gcm', keyLength: 16 },
  '2.16.840.1.101.3.4.1.26': { cipher: 'aes-192-gcm', keyLength: 24 },
  '2.16.840.1.101.3.4.1.46': { cipher: 'aes-256-gcm', keyLength: 32 },
};
const AES_CBC: Readonly<Record<string, { cipher: string; keyLength: number }>> = {
  '2.16.840.1.101.3.4.1.2': { cipher: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { cipher: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { cipher: 'aes-256-cbc', keyLength: 32 },
};
const OID_AES128_GCM = '2.16.840.1.101.3.4.1.6';
const OAEP_HASHES: Readonly<Record<string, string>> = {
  [id_sha1]: 'sha1', [id_sha224]: 'sha224', [id_sha256]: 'sha256', [id_sha384]: 'sha384', [id_sha512]: 'sha512',
};
/** Go's pkcs7 writes a 12-byte nonce and appends the 16-byte tag (cipher.NewGCM defaults). */
const GCM_NONCE_LENGTH = 12;
const GCM_TAG_LENGTH = 16;
/** The primitive tag Go's encoder gives the GCM parameters (its asn1.RawValue keeps Tag 16, Class universal, not compound). */
const GO_GCM_PARAMS_TAG = 0x10;

// GCMParameters as Go's pkcs7 encodes it (nonce as [4] IMPLICIT) and as RFC 5084 specifies it.
// Decorator syntax cannot run under type stripping, so the schema decorators are applied by hand.
class GoGcmParameters {
  nonce = new OctetString();
  icvLen = GCM_TAG_LENGTH;
}
AsnProp({ type: OctetString, context: 4, implicit: true })(GoGcmParameters.prototype, 'nonce');
AsnProp({ type: AsnPropTypes.Integer, defaultValue: 12 })(GoGcmParameters.prototype, 'icvLen');

class Rfc5084GcmParameters {
  nonce = new OctetString();
  icvLen = 12;
}
AsnProp({ type: OctetString })(Rfc5084GcmParameters.prototype, 'nonce');
AsnProp({ type: AsnPropTypes.Integer, defaultValue: 12 })(Rfc5084GcmParameters.prototype, 'icvLen');

/** What the encoder needs per recipient; `encryptedKey` is the RSA-wrapped content key. */
export interface Pkcs7Recipient {
  readonly certificate: X509Certificate;
  readonly encryptedKey: Uint8Array;
}

export interface EnvelopeParts {
  readonly recipients: readonly Pkcs7Recipient[];
  readonly contentKey: Uint8Array;
  readonly nonce: Uint8Array;
  readonly plaintext: Uint8Array;
  /** `primitive` is what ocicrypt writes today; `constructed` is the older mozilla/fullsailor form. */
  readonly encryptedContentForm?: 'primitive' | 'constructed';
}

function toBytes(buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : new Uint8Array(buffer);
}

function parseCertificate(cert: X509Certificate): Certificate {
  return AsnConvert.parse(cert.raw, Certificate);
}

/** Go's encoding of the AES-GCM parameters: a primitive tag-0x10 TLV around a DER SEQUENCE. */
export function encodeGoGcmParameters(nonce: Uint8Array): Uint8Array {
  const params = new GoGcmParameters();
  params.nonce = new OctetString(nonce);
  params.icvLen = GCM_TAG_LENGTH;
  const inner = toBytes(AsnConvert.serialize(params));
  if (inner.length > 127) throw new Error(`GCM parameters of ${inner.length} bytes do not fit a short-form length`);
  return Uint8Array.from([GO_GCM_PARAMS_TAG, inner.length, ...inner]);
}

/** Reads GCM parameters in Go's non-standard form or in the RFC 5084 form. */
export function decodeGcmParameters(raw: Uint8Array): { nonce: Uint8Array; icvLen: number } {
  if (raw[0] === GO_GCM_PARAMS_TAG) {
    const { content } = primitiveContent(raw);
    const params = AsnConvert.parse(content, GoGcmParameters);
    return { nonce: toBytes(params.nonce.buffer), icvLen: params.icvLen };
  }
  const params = AsnConvert.parse(raw, Rfc5084GcmParameters);
  return { nonce: toBytes(params.nonce.buffer), icvLen: params.icvLen };
}

/** The content of a single DER TLV (definite length) — only used for Go's tag-0x10 wrapper. */
function primitiveContent(tlv: Uint8Array): { content: Uint8Array } {
  const first = tlv[1];
  if (first === undefined) throw new Error('PKCS7: truncated GCM parameters');
  let length = first;
  let offset = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 3) throw new Error('PKCS7: unsupported length encoding in GCM parameters');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (tlv[offset + i] ?? 0);
    offset += count;
  }
  if (offset + length > tlv.length) throw new Error('PKCS7: truncated GCM parameters');
  return { content: tlv.subarray(offset, offset + length) };
}

/** Builds the DER ContentInfo(EnvelopedData) from fixed parts; randomness is the caller's. */
export function buildEnvelope(parts: EnvelopeParts): Uint8Array {
  if (parts.contentKey.length !== 16) throw new Error('PKCS7: ocicrypt uses AES-128-GCM, the content key must be 16 bytes');
  if (parts.nonce.length !== GCM_NONCE_LENGTH) throw new Error(`PKCS7: the GCM nonce must be ${GCM_NONCE_LENGTH} bytes`);
  const cipher = crypto.createCipheriv('aes-128-gcm', parts.contentKey, parts.nonce, { authTagLength: GCM_TAG_LENGTH });
  const sealed = Buffer.concat([cipher.update(parts.plaintext), cipher.final(), cipher.getAuthTag()]);

  const recipientInfos = new RecipientInfos(
    parts.recipients.map((recipient) => {
      const tbs = parseCertificate(recipient.certificate).tbsCertificate;
      return new RecipientInfo({
        ktri: new KeyTransRecipientInfo({
          version: 0,
          rid: new RecipientIdentifier({
            issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: tbs.issuer, serialNumber: tbs.serialNumber }),
          }),
          // Go writes rsaEncryption without the NULL parameter that RFC 3370 recommends.
          keyEncryptionAlgorithm: new KeyEncryptionAlgorithmIdentifier({ algorithm: id_rsaEncryption }),
          encryptedKey: new OctetString(recipient.encryptedKey),
        }),
      });
    }),
  );
  const encryptedContent =
    parts.encryptedContentForm === 'constructed'
      ? new EncryptedContent({ constructedValue: [new OctetString(sealed)] })
      : new EncryptedContent({ value: new OctetString(sealed) });
  const params = encodeGoGcmParameters(parts.nonce);
  const envelopedData = new EnvelopedData({
    version: 0,
    recipientInfos,
    encryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new ContentEncryptionAlgorithmIdentifier({
        algorithm: OID_AES128_GCM,
        parameters: params.buffer.slice(params.byteOffset, params.byteOffset + params.byteLength) as ArrayBuffer,
      }),
      encryptedContent,
    }),
  });
  const contentInfo = new ContentInfo({ contentType: id_envelopedData, content: AsnConvert.serialize(envelopedData) });
  return toBytes(AsnConvert.serialize(contentInfo));
}

function describeCert(cert: LoadedCertificate): string {
  return `${cert.source} (subject ${cert.cert.subject.replaceAll('\n', ', ')})`;
}

/** Encrypts `plaintext` to every certificate, as ocicrypt does: RSA PKCS#1 v1.5 key transport, AES-128-GCM. */
export function encryptPkcs7(certs: readonly LoadedCertificate[], plaintext: Uint8Array): Uint8Array {
  const contentKey = crypto.randomBytes(16);
  const recipients = certs.map((cert) => {
    const publicKey = cert.cert.publicKey;
    if (publicKey.asymmetricKeyType !== 'rsa') {
      throw new Error(`PKCS7: certificate ${describeCert(cert)} has a ${publicKey.asymmetricKeyType} key; ocicrypt's PKCS7 supports RSA only`);
    }
    const encryptedKey = crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, contentKey);
    return { certificate: cert.cert, encryptedKey };
  });
  return buildEnvelope({ recipients, contentKey, nonce: crypto.randomBytes(GCM_NONCE_LENGTH), plaintext });
}

function sameSerial(a: ArrayBuffer, b: ArrayBuffer): boolean {
  const strip = (bytes: Uint8Array): Uint8Array => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    return bytes.subarray(i);
  };
  return Buffer.from(strip(new Uint8Array(a))).equals(Buffer.from(strip(new Uint8Array(b))));
}

function sameName(a: Name, b: Name): boolean {
  return Buffer.from(AsnConvert.serialize(a)).equals(Buffer.from(AsnConvert.serialize(b)));
}

function samePublicKey(key: KeyObject, cert: X509Certificate): boolean {
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  return spki(crypto.createPublicKey(key)).equals(spki(cert.publicKey));
}

function unwrapContentKey(ktri: KeyTransRecipientInfo, key: KeyObject): Buffer {
  const encryptedKey = toBytes(ktri.encryptedKey.buffer);
  const algorithm = ktri.keyEncryptionAlgorithm.algorithm;
  if (algorithm === id_rsaEncryption) {
    // OpenSSL 3 answers a wrong key with implicit rejection (random bytes); the GCM tag catches it.
    return crypto.privateDecrypt({ key, padding: crypto.constants.RSA_PKCS1_PADDING }, encryptedKey);
  }
  if (algorithm === id_RSAES_OAEP) {
    const raw = ktri.keyEncryptionAlgorithm.parameters;
    const params = raw ? AsnConvert.parse(raw, RsaEsOaepParams) : new RsaEsOaepParams();
    const oaepHash = OAEP_HASHES[params.hashAlgorithm.algorithm];
    if (!oaepHash) throw new Error(`unsupported RSA-OAEP hash ${params.hashAlgorithm.algorithm}`);
    // No label is passed: ocicrypt's producers never set one, and a labelled key fails to decode.
    return crypto.privateDecrypt({ key, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, encryptedKey);
  }
  throw new Error(`unsupported key transport algorithm ${algorithm}`);
}

function encryptedContentBytes(info: EncryptedContentInfo): Uint8Array {
  const content = info.encryptedContent;
  if (!content) throw new Error('EnvelopedData has no encryptedContent');
  if (content.value) return toBytes(content.value.buffer);
  // The constructed form is a run of OCTET STRINGs whose contents concatenate (BER).
  return Buffer.concat((content.constructedValue ?? []).map((part) => toBytes(part.buffer)));
}

function decryptContent(info: EncryptedContentInfo, contentKey: Uint8Array): Uint8Array {
  const { algorithm, parameters } = info.contentEncryptionAlgorithm;
  const sealed = encryptedContentBytes(info);
  const gcm = AES_GCM[algorithm];
  if (gcm) {
    if (!parameters) throw new Error(`content algorithm ${gcm.cipher} without parameters`);
    if (contentKey.length !== gcm.keyLength) throw new Error(`content key of ${contentKey.length} bytes for ${gcm.cipher}`);
    const { nonce, icvLen } = decodeGcmParameters(new Uint8Array(parameters));
    if (icvLen < 12 || icvLen > 16 || sealed.length < icvLen) throw new Error(`bad GCM tag length ${icvLen}`);
    const decipher = crypto.createDecipheriv(gcm.cipher, contentKey, nonce, { authTagLength: icvLen });
    decipher.setAuthTag(sealed.subarray(sealed.length - icvLen));
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - icvLen)), decipher.final()]);
  }
  const cbc = AES_CBC[algorithm];
  if (cbc) {
    if (!parameters) throw new Error(`content algorithm ${cbc.cipher} without an IV`);
    if (contentKey.length !== cbc.keyLength) throw new Error(`content key of ${contentKey.length} bytes for ${cbc.cipher}`);
    const iv = toBytes(AsnConvert.parse(parameters, OctetString).buffer);
    const decipher = crypto.createDecipheriv(cbc.cipher, contentKey, iv);
    return Buffer.concat([decipher.update(sealed), decipher.final()]);
  }
  throw new Error(`unsupported content encryption algorithm ${algorithm} (AES-CBC and AES-GCM are supported)`);
}

/**
 * Decrypts a CMS EnvelopedData. A recipient is used only when a certificate names it by issuer
 * and serial and a private key matches that certificate, as ocicrypt requires both.
 */
export function decryptPkcs7(
  der: Uint8Array,
  certs: readonly LoadedCertificate[],
  keys: readonly LoadedPrivateKey[],
): Uint8Array {
  const contentInfo = AsnConvert.parse(der, ContentInfo);
  if (contentInfo.contentType !== id_envelopedData) {
    throw new Error(`PKCS7: content type ${contentInfo.contentType} is not envelopedData`);
  }
  const enveloped = AsnConvert.parse(contentInfo.content, EnvelopedData);
  const failures: string[] = [];
  let matchedRecipient = false;
  for (const recipient of enveloped.recipientInfos) {
    const ktri = recipient.ktri;
    const issuerAndSerial = ktri?.rid.issuerAndSerialNumber;
    if (!ktri || !issuerAndSerial) continue;
    for (const cert of certs) {
      const tbs = parseCertificate(cert.cert).tbsCertificate;
      if (!sameSerial(tbs.serialNumber, issuerAndSerial.serialNumber) || !sameName(tbs.issuer, issuerAndSerial.issuer)) continue;
      matchedRecipient = true;
      const matchingKeys = keys.filter((key) => key.key.asymmetricKeyType === 'rsa' && samePublicKey(key.key, cert.cert));
      if (matchingKeys.length === 0) {
        failures.push(`certificate ${describeCert(cert)} names a recipient but no private key matches it`);
      }
      for (const key of matchingKeys) {
        try {
          return decryptContent(enveloped.encryptedContentInfo, unwrapContentKey(ktri, key.key));
        } catch (error) {
          failures.push(`${key.source} with ${cert.source}: ${(error as Error).message}`);
        }
      }
    }
  }
  if (!matchedRecipient) {
    const tried = certs.length > 0 ? certs.map(describeCert).join(', ') : 'none given';
    failures.push(`no certificate matches a recipient by issuer and serial (certificates: ${tried})`);
  }
  throw new Error(`PKCS7: could not decrypt: ${failures.join('; ')}`);
}

export const pkcs7KeyWrapper: KeyWrapper = {
  annotationId: 'pkcs7',
  async wrap(ec: EncryptConfig, privateOptionsJson: Uint8Array): Promise<Uint8Array | undefined> {
    if (ec.pkcs7.length === 0) return undefined;
    return encryptPkcs7(ec.pkcs7, privateOptionsJson);
  },
  noPossibleKeys(dc: DecryptConfig): boolean {
    return dc.privateKeys.length === 0;
  },
  async unwrap(dc: DecryptConfig, blob: Uint8Array): Promise<Uint8Array> {
    if (dc.x509s.length === 0) {
      throw new Error(
        `PKCS7: the recipient certificate is needed beside the private key (keys tried: ${dc.privateKeys.map((k) => k.source).join(', ') || 'none'})`,
      );
    }
    return decryptPkcs7(blob, dc.x509s, dc.privateKeys);
  },
};
