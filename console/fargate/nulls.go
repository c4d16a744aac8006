package fargate

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// dropNulls removes every object member whose value is JSON null, at any
// depth, keeping everything else as written (key order, number spelling).
// ECS reads a null member as an absent one, but the AWS CLI and SDKs refuse
// it before sending ("Invalid type for parameter ... value: None"). A null
// inside an array has no absent reading and is refused, naming its path.
func dropNulls(raw json.RawMessage, path string) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	if err := rewriteValue(dec, &out, path); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func rewriteValue(dec *json.Decoder, out *bytes.Buffer, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return rewriteToken(dec, out, tok, path)
}

func rewriteToken(dec *json.Decoder, out *bytes.Buffer, tok json.Token, path string) error {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			out.WriteByte('{')
			first := true
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				key, _ := kt.(string)
				vt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if vt == nil {
					continue
				}
				if !first {
					out.WriteByte(',')
				}
				first = false
				kb, _ := json.Marshal(key)
				out.Write(kb)
				out.WriteByte(':')
				if err := rewriteToken(dec, out, vt, join(path, key)); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				elem := fmt.Sprintf("%s[%d]", path, i)
				et, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%s: %w", elem, err)
				}
				if et == nil {
					return invalid("%s is null: remove the entry (the AWS CLI refuses a null inside a list)", elem)
				}
				if err := rewriteToken(dec, out, et, elem); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out.WriteByte(']')
		}
	case nil:
		out.WriteString("null")
	case string:
		// As written: no HTML escaping of <, > and &.
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out.Truncate(out.Len() - 1) // Encode's newline
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out.Write(b)
	}
	return nil
}
