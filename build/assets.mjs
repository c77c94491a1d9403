// Builds the front-end assets into app/static/build (git-ignored).
// - compiles the council-branded Sass (Arial, no GDS Transport, no crown)
// - copies GOV.UK Frontend, MOJ Frontend and htmx JavaScript
// - copies the project's own JavaScript and images
// Run with `npm run build` (the Makefile does this for you).
import { mkdirSync, copyFileSync, writeFileSync, readdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as sass from 'sass'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'app/static/src')
const out = join(root, 'app/static/build')
const nm = join(root, 'node_modules')

for (const dir of ['css', 'js', 'images']) mkdirSync(join(out, dir), { recursive: true })

const result = sass.compile(join(src, 'scss/application.scss'), {
  loadPaths: [nm, root],
  style: 'compressed',
  quietDeps: true,
  silenceDeprecations: ['import'],
  // GOV.UK and MOJ Frontend print their own deprecation notices about each other: not ours to fix
  logger: process.env.SASS_VERBOSE ? undefined : sass.Logger.silent
})
writeFileSync(join(out, 'css/application.css'), result.css)

const copies = [
  [join(nm, 'govuk-frontend/dist/govuk/govuk-frontend.min.js'), 'js/govuk-frontend.min.js'],
  [join(nm, '@ministryofjustice/frontend/moj/moj-frontend.min.js'), 'js/moj-frontend.min.js'],
  [join(nm, 'htmx.org/dist/htmx.min.js'), 'js/htmx.min.js'],
  [join(nm, 'accessible-autocomplete/dist/accessible-autocomplete.min.js'), 'js/accessible-autocomplete.min.js']
]
for (const file of readdirSync(join(src, 'js'))) copies.push([join(src, 'js', file), join('js', file)])
for (const file of readdirSync(join(src, 'images'))) copies.push([join(src, 'images', file), join('images', file)])
for (const [from, to] of copies) copyFileSync(from, join(out, to))

console.log(`assets built into ${out}`)
