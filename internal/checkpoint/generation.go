package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
)

// GenerationConfig is the part of generation_config.json the engine reads:
// which ids end a reply, and the sampling defaults the model was published with.
type GenerationConfig struct {
	EOSTokenIDs IDs      `json:"eos_token_id"` // one id or a list
	Temperature *float64 `json:"temperature"`
	TopP        *float64 `json:"top_p"`
	TopK        *int     `json:"top_k"`
}

// ReadGenerationConfig reads dir/generation_config.json (at most
// MaxJSONBytes of it). A missing file is not an error: it gives an empty
// config (with the config.json eos id, if any). Sampling defaults outside
// what the sampler accepts (a negative temperature, top_p outside (0, 1], a
// negative top_k) are an error naming the field, as the same values given as
// flags are.
func (ck *Checkpoint) ReadGenerationConfig() (*GenerationConfig, error) {
	path := filepath.Join(ck.Dir, "generation_config.json")
	g := &GenerationConfig{}
	raw, err := boundedfile.Read(path, MaxJSONBytes)
	if errors.Is(err, os.ErrNotExist) {
		g.EOSTokenIDs = ck.Config.EOSTokenID
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(raw, g); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, jsonError(err))
	}
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if len(g.EOSTokenIDs) == 0 {
		g.EOSTokenIDs = ck.Config.EOSTokenID
	}
	return g, nil
}

// validate applies the sampler's own limits. JSON cannot spell NaN or an
// infinity, but the checks are written so that neither would pass.
func (g *GenerationConfig) validate() error {
	switch {
	case g.Temperature != nil && !(*g.Temperature >= 0 && !math.IsInf(*g.Temperature, 1)):
		return fmt.Errorf("temperature must be a number >= 0, got %g", *g.Temperature)
	case g.TopP != nil && !(*g.TopP > 0 && *g.TopP <= 1):
		return fmt.Errorf("top_p must be in (0, 1], got %g", *g.TopP)
	case g.TopK != nil && *g.TopK < 0:
		return fmt.Errorf("top_k must be >= 0, got %d", *g.TopK)
	}
	for _, id := range g.EOSTokenIDs {
		if id < 0 {
			return fmt.Errorf("eos_token_id %d is negative", id)
		}
	}
	return nil
}
