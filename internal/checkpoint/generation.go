package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// GenerationConfig is the part of generation_config.json the engine reads:
// which ids end a reply, and the sampling defaults the model was published with.
type GenerationConfig struct {
	EOSTokenIDs IDs      `json:"eos_token_id"` // one id or a list
	Temperature *float64 `json:"temperature"`
	TopP        *float64 `json:"top_p"`
	TopK        *int     `json:"top_k"`
}

// ReadGenerationConfig reads dir/generation_config.json. A missing file is not
// an error: it gives an empty config (with the config.json eos id, if any).
func (ck *Checkpoint) ReadGenerationConfig() (*GenerationConfig, error) {
	path := filepath.Join(ck.Dir, "generation_config.json")
	g := &GenerationConfig{}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		g.EOSTokenIDs = ck.Config.EOSTokenID
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, g); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: eos_token_id must be an id or a list of ids: %w", path, err)
	}
	if len(g.EOSTokenIDs) == 0 {
		g.EOSTokenIDs = ck.Config.EOSTokenID
	}
	return g, nil
}
