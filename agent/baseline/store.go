package baseline

import (
	"context"

	"github.com/picket-agent/picket/state"
)

// MetaVersions is the state key holding the promoted versions (a JSON
// list, newest last): the agent writes it, `picket baseline` and the
// host-branch export read it.
const MetaVersions = "baseline_versions"

// Load reads the promoted versions from state.
func Load(ctx context.Context, st *state.Store) (*Versions, error) {
	var list []Version
	if _, err := st.MetaJSON(ctx, MetaVersions, &list); err != nil {
		return nil, err
	}
	return NewVersions(list)
}
