package w3d5

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/serving"
)

const task1 = "W3D5 Task 1 (request parsing)"

// generic is a recorded body decoded without the day's code, to say what
// each parsed field must be.
type generic map[string]any

func (g generic) num(key string, def float64) float64 {
	if v, ok := g[key].(float64); ok {
		return v
	}
	return def
}

func (g generic) stops() []string {
	switch v := g["stop"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, s.(string))
		}
		return out
	}
	return nil
}

func (g generic) includeUsage() bool {
	so, _ := g["stream_options"].(map[string]any)
	b, _ := so["include_usage"].(bool)
	return b
}

func (g generic) seed() *int64 {
	if v, ok := g["seed"].(float64); ok {
		s := int64(v)
		return &s
	}
	return nil
}

// ParseRecorded parses every request body the official clients sent and
// checks each field against the body itself; the bodies the server
// refused when they were recorded must be refused with the same status.
func ParseRecorded(t *testing.T, d Day) {
	t.Helper()
	for _, ex := range exchanges(t) {
		if ex.Method != "POST" {
			continue
		}
		var g generic
		if err := json.Unmarshal(ex.Body, &g); err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		wantErr := ex.Status == 400
		stub := false
		t.Run(ex.name, func(t *testing.T) {
			stub = run(t, task1, func() {
				switch ex.Path {
				case "/v1/chat/completions":
					req, err := d.ParseChat(ex.Body)
					if wantErr {
						if err == nil {
							t.Errorf("ParseChatRequest accepted %s; the server answered it with %d", ex.Body, ex.Status)
						} else if ae := apiError(t, "ParseChatRequest", err); ae != nil && ae.Status != ex.Status {
							t.Errorf("status %d, want %d", ae.Status, ex.Status)
						}
						return
					}
					if err != nil {
						t.Errorf("ParseChatRequest refused what %s sent: %v\nbody: %s", ex.Client, err, ex.Body)
						return
					}
					checkChat(t, g, req)
				case "/v1/completions":
					req, err := d.ParseCompletion(ex.Body)
					if err != nil {
						t.Errorf("ParseCompletionRequest refused what %s sent: %v\nbody: %s", ex.Client, err, ex.Body)
						return
					}
					checkCompletion(t, g, req)
				}
			})
		})
		if stub {
			return
		}
	}
}

func checkChat(t *testing.T, g generic, req *serving.ChatRequest) {
	t.Helper()
	var msgs []serving.ChatMessage
	for _, m := range g["messages"].([]any) {
		mm := m.(map[string]any)
		msgs = append(msgs, serving.ChatMessage{Role: mm["role"].(string), Content: mm["content"].(string)})
	}
	maxTokens := g.num("max_completion_tokens", g.num("max_tokens", 0))
	want := serving.ChatRequest{Model: g["model"].(string), Messages: msgs, MaxTokens: int(maxTokens),
		Temperature: g.num("temperature", 1), TopP: g.num("top_p", 1), Seed: g.seed(), Stop: g.stops(),
		Stream: g["stream"] == true, IncludeUsage: g.includeUsage()}
	if !reflect.DeepEqual(*req, want) {
		t.Errorf("parsed\n  %s\nwant\n  %s", fmtReq(*req), fmtReq(want))
	}
}

func checkCompletion(t *testing.T, g generic, req *serving.CompletionRequest) {
	t.Helper()
	want := serving.CompletionRequest{Model: g["model"].(string), Prompt: g["prompt"].(string), MaxTokens: int(g.num("max_tokens", 16)),
		Temperature: g.num("temperature", 1), TopP: g.num("top_p", 1), Seed: g.seed(), Stop: g.stops(),
		Stream: g["stream"] == true, IncludeUsage: g.includeUsage()}
	if !reflect.DeepEqual(*req, want) {
		t.Errorf("parsed\n  %s\nwant\n  %s", fmtReq(*req), fmtReq(want))
	}
}

// fmtReq shows a parsed request with its seed's value, not its address.
func fmtReq(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const userHi = `[{"role":"user","content":"hi"}]`

// badBodies are bodies every server must refuse with a 400 naming the
// field (param) at fault: what the chapter lists.
var badBodies = []struct{ name, body, param string }{
	{"empty", ``, ""},
	{"not_json", `{"model": "m", "messages": [`, ""},
	{"array", `[1, 2]`, ""},
	{"trailing", `{"model":"m","messages":` + userHi + `} {}`, ""},
	{"trailing_brace", `{"model":"m","messages":` + userHi + `} }`, ""},
	{"no_model", `{"messages":` + userHi + `}`, "model"},
	{"model_number", `{"model": 7, "messages":` + userHi + `}`, "model"},
	{"no_messages", `{"model":"m"}`, "messages"},
	{"empty_messages", `{"model":"m","messages":[]}`, "messages"},
	{"messages_object", `{"model":"m","messages":{"role":"user"}}`, "messages"},
	{"bad_role", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].role"},
	{"no_content", `{"model":"m","messages":[{"role":"user"}]}`, "messages[0].content"},
	{"content_number", `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content"},
	{"image_part", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "messages[0].content"},
	{"max_tokens_zero", `{"model":"m","messages":` + userHi + `,"max_tokens":0}`, "max_tokens"},
	{"max_tokens_fraction", `{"model":"m","messages":` + userHi + `,"max_tokens":1.5}`, "max_tokens"},
	{"max_tokens_string", `{"model":"m","messages":` + userHi + `,"max_tokens":"10"}`, "max_tokens"},
	{"max_completion_tokens_negative", `{"model":"m","messages":` + userHi + `,"max_completion_tokens":-3}`, "max_completion_tokens"},
	{"temperature_high", `{"model":"m","messages":` + userHi + `,"temperature":2.5}`, "temperature"},
	{"temperature_negative", `{"model":"m","messages":` + userHi + `,"temperature":-1}`, "temperature"},
	{"top_p_zero", `{"model":"m","messages":` + userHi + `,"top_p":0}`, "top_p"},
	{"top_p_high", `{"model":"m","messages":` + userHi + `,"top_p":1.5}`, "top_p"},
	{"n_two", `{"model":"m","messages":` + userHi + `,"n":2}`, "n"},
	{"stop_number", `{"model":"m","messages":` + userHi + `,"stop":7}`, "stop"},
	{"stop_five", `{"model":"m","messages":` + userHi + `,"stop":["a","b","c","d","e"]}`, "stop"},
	{"stop_empty", `{"model":"m","messages":` + userHi + `,"stop":[""]}`, "stop"},
	{"stream_string", `{"model":"m","messages":` + userHi + `,"stream":"yes"}`, "stream"},
	{"seed_fraction", `{"model":"m","messages":` + userHi + `,"seed":0.5}`, "seed"},
	// Fields that ask for what the server does not do
	// (serving.CheckUnsupported).
	{"logprobs_true", `{"model":"m","messages":` + userHi + `,"logprobs":true,"top_logprobs":2}`, "logprobs"},
	{"tools", `{"model":"m","messages":` + userHi + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
	{"response_format_json", `{"model":"m","messages":` + userHi + `,"response_format":{"type":"json_object"}}`, "response_format"},
	{"stream_options_without_stream", `{"model":"m","messages":` + userHi + `,"stream_options":{"include_usage":true}}`, "stream_options"},
}

// goodBodies are accepted, with what they must parse to.
var goodBodies = []struct {
	name, body string
	want       serving.ChatRequest
}{
	{"text_parts", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`,
		serving.ChatRequest{Model: "m", Messages: []serving.ChatMessage{{Role: "user", Content: "ab"}}, Temperature: 1, TopP: 1}},
	{"nulls_are_absent", `{"model":"m","messages":` + userHi + `,"temperature":null,"stop":null,"max_tokens":null,"n":null}`,
		serving.ChatRequest{Model: "m", Messages: []serving.ChatMessage{{Role: "user", Content: "hi"}}, Temperature: 1, TopP: 1}},
	{"max_completion_tokens_first", `{"model":"m","messages":` + userHi + `,"max_tokens":5,"max_completion_tokens":9,"n":1}`,
		serving.ChatRequest{Model: "m", Messages: []serving.ChatMessage{{Role: "user", Content: "hi"}}, MaxTokens: 9, Temperature: 1, TopP: 1}},
	{"defaults_ask_nothing", `{"model":"m","messages":` + userHi + `,"logprobs":false,"response_format":{"type":"text"},"tools":[],"tool_choice":"none","presence_penalty":0,"stream":false}`,
		serving.ChatRequest{Model: "m", Messages: []serving.ChatMessage{{Role: "user", Content: "hi"}}, Temperature: 1, TopP: 1}},
	{"developer_is_system", `{"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"assistant","content":null},{"role":"user","content":"hi"}],"temperature":0,"top_p":0.5,"seed":-4,"stop":"\n\n","stream":true,"stream_options":{"include_usage":true},"frequency_penalty":0,"user":"u1"}`,
		serving.ChatRequest{Model: "m", Messages: []serving.ChatMessage{{Role: "system", Content: "be brief"}, {Role: "assistant"}, {Role: "user", Content: "hi"}},
			Temperature: 0, TopP: 0.5, Seed: ptr(int64(-4)), Stop: []string{"\n\n"}, Stream: true, IncludeUsage: true}},
}

func ptr[T any](v T) *T { return &v }

// ParseRejects checks that every bad body is refused with a 400 that names
// its field, and that the good ones parse to what they say.
func ParseRejects(t *testing.T, d Day) {
	t.Helper()
	for _, c := range badBodies {
		stub := false
		t.Run(c.name, func(t *testing.T) {
			stub = run(t, task1, func() {
				req, err := d.ParseChat([]byte(c.body))
				if err == nil {
					t.Errorf("ParseChatRequest(%s) = %s, want a 400 about %q", c.body, fmtReq(req), c.param)
					return
				}
				ae := apiError(t, fmt.Sprintf("ParseChatRequest(%s)", c.body), err)
				if ae != nil && c.param != "" && !strings.HasPrefix(ae.Param, c.param) {
					t.Errorf("ParseChatRequest(%s): param %q, want %q (the field at fault)", c.body, ae.Param, c.param)
				}
			})
		})
		if stub {
			return
		}
	}
	for _, c := range goodBodies {
		t.Run(c.name, func(t *testing.T) {
			run(t, task1, func() {
				req, err := d.ParseChat([]byte(c.body))
				if err != nil {
					t.Errorf("ParseChatRequest(%s): %v", c.body, err)
					return
				}
				if !reflect.DeepEqual(*req, c.want) {
					t.Errorf("ParseChatRequest(%s)\n  = %s\nwant %s", c.body, fmtReq(*req), fmtReq(c.want))
				}
			})
		})
	}
	t.Run("completion", func(t *testing.T) {
		run(t, task1, func() {
			for _, body := range []string{`{"model":"m"}`, `{"model":"m","prompt":["a","b"]}`, `{"model":"m","prompt":[1,2,3]}`, `{"model":"m","prompt":"x","max_tokens":0}`,
				`{"model":"m","prompt":"x","echo":true}`, `{"model":"m","prompt":"x","best_of":2}`, `{"model":"m","prompt":"x","suffix":"y"}`, `{"model":"m","prompt":"x","logprobs":1}`} {
				_, err := d.ParseCompletion([]byte(body))
				if err == nil {
					t.Errorf("ParseCompletionRequest(%s) accepted it, want a 400", body)
					continue
				}
				apiError(t, "ParseCompletionRequest("+body+")", err)
			}
			req, err := d.ParseCompletion([]byte(`{"model":"m","prompt":["one"]}`))
			if err != nil || req.Prompt != "one" || req.MaxTokens != 16 || req.Temperature != 1 {
				t.Errorf(`ParseCompletionRequest({"prompt":["one"]}) = %s, %v; want prompt "one", max_tokens 16 (OpenAI's default), temperature 1`, fmtReq(req), err)
			}
		})
	})
}

// FuzzSeeds are the fuzz target's seed corpus: the recorded bodies and the
// table's, good and bad.
func FuzzSeeds(f *testing.F) {
	f.Helper()
	for _, c := range badBodies {
		f.Add([]byte(c.body))
	}
	for _, c := range goodBodies {
		f.Add([]byte(c.body))
	}
	for _, body := range recordedBodies(f) {
		f.Add(body)
	}
}

// Fuzz is the fuzz target's body: whatever the bytes, the parsers return a
// request that keeps the API's rules or a 4xx *serving.APIError; they
// never panic and never accept a body that is not JSON.
func Fuzz(t *testing.T, d Day, body []byte) {
	if fuzzStub.Load() {
		t.SkipNow() // the first input said it: not implemented yet
	}
	stub := run(t, task1, func() {
		req, err := d.ParseChat(body)
		if err != nil {
			apiError(t, "ParseChatRequest", err)
		} else {
			if !json.Valid(body) {
				t.Errorf("ParseChatRequest accepted a body that is not JSON: %q", body)
			}
			checkRules(t, "ParseChatRequest", req.MaxTokens, 0, req.Temperature, req.TopP, req.Stop)
			if len(req.Messages) == 0 {
				t.Errorf("ParseChatRequest accepted %q with no messages", body)
			}
			for _, m := range req.Messages {
				if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
					t.Errorf("ParseChatRequest accepted role %q in %q", m.Role, body)
				}
			}
		}
		creq, err := d.ParseCompletion(body)
		if err != nil {
			apiError(t, "ParseCompletionRequest", err)
		} else {
			if !json.Valid(body) {
				t.Errorf("ParseCompletionRequest accepted a body that is not JSON: %q", body)
			}
			checkRules(t, "ParseCompletionRequest", creq.MaxTokens, 1, creq.Temperature, creq.TopP, creq.Stop)
		}
	})
	if stub {
		fuzzStub.Store(true)
	}
}

// fuzzStub is set once an input hit a TODO stub.
var fuzzStub atomic.Bool

func checkRules(t *testing.T, fn string, maxTokens, minTokens int, temp, topP float64, stop []string) {
	t.Helper()
	if maxTokens < minTokens || !(temp >= 0 && temp <= 2) || !(topP > 0 && topP <= 1) || len(stop) > 4 {
		t.Errorf("%s accepted max tokens %d, temperature %g, top_p %g, %d stop sequences", fn, maxTokens, temp, topP, len(stop))
	}
	for _, s := range stop {
		if s == "" {
			t.Errorf("%s accepted an empty stop sequence", fn)
		}
	}
}

// recordedBodies are the request bodies of the recorded exchanges.
func recordedBodies(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, ex := range exchanges(tb) {
		if len(ex.Body) > 0 {
			out = append(out, ex.Body)
		}
	}
	return out
}
