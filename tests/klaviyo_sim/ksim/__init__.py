"""The Klaviyo API simulator, one concern a module; ../klaviyo_sim.py is the entry point (the
server and its command line) and ../README.md says what the simulator does.

  spec       the vendored OpenAPI spec: $refs resolved, operations and their validators compiled
  errors     Klaviyo-format error responses (ApiError and its common cases)
  validate   request checks: payload limits, the body against the spec, identifiers, consent
  filters    Klaviyo's `filter` query parameter: parsing and matching
  resources  rendering of lists, profiles and jobs as JSON:API resources; cursor paging
  state      the simulated account (profiles, lists, jobs, counters) and its configuration
  ratelimit  per-(account, operation) rate-limit windows from the spec's x-klaviyo-ratelimit
  jobs       bulk jobs (import, subscribe, unsubscribe): scheduling and applying them
  faults     injected faults (POST /_sim/faults)
  endpoints  the served API operations, one function each
  control    the /_sim/ control endpoints
  handler    the HTTP request handler: check order, dispatch, request log

The package is named `ksim` (not flat modules beside the entry point) because the entry point's
folder is sys.path[0] when it runs: flat `state`, `errors` or `spec` modules would shadow any
other module of that name in the process.
"""
