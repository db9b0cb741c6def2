package day5

// ParseChatRequest parses and checks the body of POST /v1/chat/completions.
// Every mistake is an *APIError with status 400 that names the field:
// a body that is not a JSON object, a missing model, no messages, a role
// other than system/user/assistant (OpenAI's "developer" counts as
// system), content that is neither a string nor a list of text parts, a
// max_tokens or max_completion_tokens below 1, a temperature outside
// [0, 2], a top_p outside (0, 1], n other than 1, more than 4 stop
// sequences, and a field that asks for what the server does not do
// (serving.CheckUnsupported: logprobs, tools, stream_options without
// stream, …). Other fields the server does not use are ignored, as clients
// send many.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	// Your code here (W3D5).
	// Decode into map[string]json.RawMessage, treat null as absent, then
	// read each field you know with a clear 400 (serving.InvalidRequest),
	// and end with serving.CheckUnsupported(fields).
	panic("TODO(W3D5): implement ParseChatRequest")
}

// ParseCompletionRequest parses and checks the body of POST
// /v1/completions, as ParseChatRequest does; the prompt is a string (or a
// list holding one string), and max_tokens defaults to 16, as OpenAI's.
func ParseCompletionRequest(body []byte) (*CompletionRequest, error) {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement ParseCompletionRequest")
}
