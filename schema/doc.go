// Package schema is picket's configuration contract: the CUE schema of the
// config repository and of the local bootstrap file (embedded from
// policy.cue), the Go types the rest of the agent reads, and the code that
// loads and validates a repository into one host's Policy.
//
// Users:
//   - the agent, at start and on every reload, turns a verified checkout into
//     a Policy with LoadFS (or runs Default when it has no verified config)
//     and reads its bootstrap file with LoadBootstrap;
//   - `picket validate` (and so the config repository's CI) calls
//     ValidateDir, which checks the fleet policy and every host override;
//   - the git sync loads a candidate revision straight from its git tree
//     through an fs.FS, so an invalid revision is rejected before it is
//     applied and the last good config stays in force.
//
// Every problem is reported as an Issue with file:line:col and the field
// path, collected in a *ValidationError, so an operator can fix a pull
// request from the CI log alone.
package schema
