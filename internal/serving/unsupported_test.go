package serving

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckUnsupported(t *testing.T) {
	for _, tc := range []struct {
		body  string
		param string // "": accepted
	}{
		// What the official clients send by default, and the defaults
		// of the fields checked: nothing is asked for.
		{`{"model":"m","messages":[]}`, ""},
		{`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, ""},
		{`{"logprobs":false,"top_logprobs":0,"echo":false,"best_of":1,"suffix":"","tools":[],"tool_choice":"none","functions":[],"function_call":"auto",` +
			`"response_format":{"type":"text"},"logit_bias":{},"presence_penalty":0,"frequency_penalty":0.0,"user":"u","store":false,"metadata":{"a":"b"}}`, ""},
		{`{"logprobs":null,"tools":null,"stream_options":null,"response_format":null}`, ""},
		// Asked for, and not done.
		{`{"logprobs":true}`, "logprobs"},
		{`{"logprobs":2}`, "logprobs"},
		{`{"top_logprobs":5}`, "top_logprobs"},
		{`{"echo":true}`, "echo"},
		{`{"best_of":3}`, "best_of"},
		{`{"suffix":" and so on"}`, "suffix"},
		{`{"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
		{`{"tool_choice":"required"}`, "tool_choice"},
		{`{"tool_choice":{"type":"function","function":{"name":"f"}}}`, "tool_choice"},
		{`{"functions":[{"name":"f"}]}`, "functions"},
		{`{"function_call":{"name":"f"}}`, "function_call"},
		{`{"response_format":{"type":"json_object"}}`, "response_format"},
		{`{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}}`, "response_format"},
		{`{"logit_bias":{"50256":-100}}`, "logit_bias"},
		{`{"presence_penalty":0.5}`, "presence_penalty"},
		{`{"frequency_penalty":-1}`, "frequency_penalty"},
		{`{"logprobs":"yes"}`, "logprobs"},
		{`{"stream_options":{"include_usage":true}}`, "stream_options"},
		{`{"stream":false,"stream_options":{"include_usage":true}}`, "stream_options"},
	} {
		var f map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.body), &f); err != nil {
			t.Fatal(err)
		}
		err := CheckUnsupported(f)
		switch {
		case tc.param == "" && err != nil:
			t.Errorf("CheckUnsupported(%s) = %v; want it accepted", tc.body, err)
		case tc.param == "":
		case err == nil:
			t.Errorf("CheckUnsupported(%s) accepted it; want a 400 about %s", tc.body, tc.param)
		case err.Status != 400 || err.Type != "invalid_request_error" || err.Param != tc.param || !strings.HasPrefix(err.Message, tc.param+" "):
			t.Errorf("CheckUnsupported(%s) = %d %s, param %q: %q; want a 400 invalid_request_error whose param and message name %s",
				tc.body, err.Status, err.Type, err.Param, err.Message, tc.param)
		}
	}
}
