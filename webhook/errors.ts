/**
 * Errors that carry their HTTP status, so route code can throw and the app's
 * one error handler (webhook/app.ts) turns them into `{ error }` responses.
 */

/** A request the webhook refuses: `status` and a message safe to show the caller. */
export class RequestError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}
