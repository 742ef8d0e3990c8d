// A thin typed wrapper over fetch: paths, parameters and answers come from schema.d.ts, which
// openapi-typescript generates from the server's OpenAPI document (`make console`).
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
type Method = "get" | "put" | "post" | "delete";
type Json<R> = R extends { content: { "application/json": infer T } } ? T : never;
type Ok<Op> = Op extends { responses: infer Rs }
  ? Rs extends { 200: infer R }
    ? Json<R>
    : Rs extends { 201: infer R }
      ? Json<R>
      : never
  : never;
// A body the operation may take, required or optional (a resume's is optional).
type Body<Op> = Op extends { requestBody?: infer R }
  ? NonNullable<R> extends { content: { "application/json": infer B } }
    ? B
    : never
  : never;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Call<Op> {
  params?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  body?: Body<Op>;
}

/** Fills `{name}` path parameters, URL-encoded; a missing one is a programming error. */
export function fillPath(path: string, params: Record<string, string> = {}): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
}

export async function call<P extends keyof paths, M extends Method & keyof paths[P]>(
  key: string | null,
  method: M,
  path: P,
  options: Call<paths[P][M]> = {},
): Promise<Ok<paths[P][M]>> {
  let url = fillPath(path as string, options.params);
  const query = Object.entries(options.query ?? {}).filter(([, v]) => v !== undefined);
  if (query.length) {
    url += "?" + new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString();
  }
  const headers: Record<string, string> = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method: (method as string).toUpperCase(),
    headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    credentials: "omit", // the key travels in a header only: no cookie, so no CSRF
  });
  if (!response.ok) {
    let code = `http_${response.status}`;
    let message = response.statusText || "request failed";
    try {
      const body = (await response.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, code, message);
  }
  return (await response.json()) as Ok<paths[P][M]>;
}
