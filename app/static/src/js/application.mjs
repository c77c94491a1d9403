// Progressive enhancement only: every journey works without this file.
// GOV.UK Frontend and MOJ Frontend components are initialised on load and again
// on any content that htmx swaps in, so enhanced components keep working.
import { initAll as initGovuk } from './govuk-frontend.min.js'
import { initAll as initMoj } from './moj-frontend.min.js'

function initialise (scope) {
  initGovuk({ scope })
  initMoj({ scope })
}

initialise(document)

document.addEventListener('htmx:afterSwap', (event) => {
  initialise(event.detail.elt)
})
