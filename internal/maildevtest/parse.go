package maildevtest

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// ParseEmail reads a raw message: its headers (decoded), and its text and HTML parts
// from a multipart/alternative body or a single part.
func ParseEmail(raw []byte) (Email, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Email{}, err
	}
	var e Email
	dec := new(mime.WordDecoder)
	e.Headers = map[string]string{}
	for k, v := range m.Header {
		d, err := dec.DecodeHeader(strings.Join(v, ", "))
		if err != nil {
			return Email{}, fmt.Errorf("header %s: %w", k, err)
		}
		e.Headers[strings.ToLower(k)] = d
	}
	e.Subject = e.Headers["subject"]
	for _, f := range []struct {
		key string
		to  *[]mail.Address
	}{{"From", &e.From}, {"To", &e.To}} {
		list, err := m.Header.AddressList(f.key)
		if err != nil {
			return Email{}, fmt.Errorf("%s: %w", f.key, err)
		}
		for _, a := range list {
			*f.to = append(*f.to, *a)
		}
	}
	ctype, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return Email{}, fmt.Errorf("Content-Type: %w", err)
	}
	if !strings.HasPrefix(ctype, "multipart/") {
		body, err := decodePart(m.Body, m.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return Email{}, err
		}
		if ctype == "text/html" {
			e.HTML = body
		} else {
			e.Text = body
		}
		return e, nil
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return e, nil
		}
		if err != nil {
			return Email{}, err
		}
		body, err := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
		if err != nil {
			return Email{}, err
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			e.Text = body
		case "text/html":
			e.HTML = body
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}
