/**
 * Ed25519 signatures over the exact bytes of a message body, with keys in the
 * PEM files `openssl genpkey -algorithm ed25519` writes (PKCS#8 private, SPKI
 * public). Uses node:crypto, which Bun and Deno both implement, and Ed25519 is
 * deterministic: the same key and bytes give the same signature everywhere.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";

export type SigningKey = KeyObject;
export type VerifyKey = KeyObject;

/** Reads a PKCS#8 PEM private key, refusing anything but Ed25519. */
export function parseSigningKey(pem: string): SigningKey {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

/** Reads one or more SPKI PEM public keys from one text (several keys may be concatenated). */
export function parseVerifyKeys(pem: string): VerifyKey[] {
  const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new Error("no PEM public key found");
  return blocks.map((block) => {
    const key = createPublicKey(block);
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`expected an Ed25519 key, got ${key.asymmetricKeyType}`);
    return key;
  });
}

/** The public key that verifies what `key` signs. */
export function verifyKeyOf(key: SigningKey): VerifyKey {
  return createPublicKey(key);
}

/** The base64 signature of `body`. */
export function signBody(body: Uint8Array, key: SigningKey): string {
  return sign(null, body, key).toString("base64");
}

/** Whether `signature` (base64) signs `body` under any of `keys`. Never throws. */
export function verifyBody(body: Uint8Array, signature: unknown, keys: readonly VerifyKey[]): boolean {
  if (typeof signature !== "string" || !/^[A-Za-z0-9+/]{86}==$/.test(signature)) return false;
  const bytes = Buffer.from(signature, "base64");
  return keys.some((key) => {
    try {
      return verify(null, body, key, bytes);
    } catch {
      return false;
    }
  });
}

/** A fresh key pair as PEM text: what `scripts/keygen.ts` writes. */
export function generateKeyPair(): { signingPem: string; verifyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signingPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    verifyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}
