// Progressive enhancement only: every journey works without this file.
// GOV.UK Frontend and MOJ Frontend components are initialised on load and again
// on any content that htmx swaps in, so enhanced components keep working.
import { initAll as initGovuk } from './govuk-frontend.min.js'
import { initAll as initMoj } from './moj-frontend.min.js'

function initialise (scope) {
  initGovuk({ scope })
  initMoj({ scope })
  // A long list of choices (e.g. what to pay for): a select without JavaScript, an
  // accessible autocomplete with it (the script is loaded only by the pages that need it).
  if (window.accessibleAutocomplete) {
    for (const select of scope.querySelectorAll('select[data-module="app-autocomplete"]')) {
      window.accessibleAutocomplete.enhanceSelectElement({ selectElement: select, defaultValue: '', showAllValues: true })
    }
  }
}

initialise(document)

document.addEventListener('htmx:afterSwap', (event) => {
  initialise(event.detail.elt)
})
