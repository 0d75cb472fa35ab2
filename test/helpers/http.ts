/** Small REST helpers for tests: one call, its status, text and JSON. */

/** Loose JSON for assertions: index it as an object or as an array. */
export type Json = Record<string, unknown> & unknown[];

/** A REST call with a JSON (or raw) body: status, text and the parsed JSON when it is JSON. */
export async function call(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; text: string; json: Json }> {
  const payload = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(`${url}${path}`, { method, body: payload });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json: json as Json };
}
