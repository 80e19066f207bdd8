// Builds the app into the folder given (default dist/), once TypeScript finds no error in
// it: app.js (one esbuild bundle), app.css (uPlot's stylesheet, then ours) and index.html.
// `make setup` runs it through `python -m infra install web`; the Dockerfile runs it too.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, "dist");
const modules = join(here, "node_modules");
execFileSync(join(modules, ".bin", "tsc"), ["--project", join(here, "tsconfig.json")], {
  stdio: "inherit",
});
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  minify: true,
  target: "es2020",
  format: "iife",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
const css = [join(modules, "uplot", "dist", "uPlot.min.css"), join(here, "src", "app.css")];
writeFileSync(join(out, "app.css"), css.map((path) => readFileSync(path, "utf8")).join("\n"));
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
