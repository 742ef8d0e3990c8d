// The digest of the console's sources, computed the same way by
// control_plane/web/sources.py: sha256 over "path\0content\0" of every source file, sorted by
// path (relative to console/, forward slashes).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

export const SOURCE_ROOTS = [
  "index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts",
  "public", "scripts", "src",
];

function walk(root, path, files) {
  const stat = statSync(path);
  if (stat.isDirectory()) {
    for (const name of readdirSync(path)) walk(root, join(path, name), files);
  } else if (!path.endsWith(".test.ts")) {
    files.push(relative(root, path).split(sep).join("/"));
  }
}

export function sourcesDigest(root) {
  const files = [];
  for (const entry of SOURCE_ROOTS) walk(root, join(root, entry), files);
  files.sort();
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(file + "\0");
    hash.update(readFileSync(join(root, file)));
    hash.update("\0");
  }
  return hash.digest("hex");
}
