/**
 * The shared secrets CI providers prove themselves with, checked in constant
 * time: Codeship's `api_key` query value and GitLab's `X-Gitlab-Token` are
 * plain secrets, GitHub's `X-Hub-Signature-256` is an HMAC of the raw body.
 * Pure: node:crypto only.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Whether two strings are equal, in time that does not depend on where they differ. */
export function safeEqual(expected: string, given: string | undefined | null): boolean {
  if (typeof given !== "string") return false;
  // Hashing first gives equal lengths, so even the length is not leaked.
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(given).digest();
  return timingSafeEqual(a, b);
}

/** GitHub's signature header value for `body`: `sha256=` and the hex HMAC-SHA256 under `secret`. */
export function githubSignature(secret: string, body: Uint8Array): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Whether `header` is GitHub's signature of the exact bytes `body`. */
export function githubSignatureValid(secret: string, body: Uint8Array, header: string | undefined): boolean {
  if (!header || !/^sha256=[0-9a-fA-F]{64}$/.test(header)) return false;
  return timingSafeEqual(Buffer.from(githubSignature(secret, body)), Buffer.from(header.toLowerCase()));
}
