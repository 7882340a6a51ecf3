package db

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes shared with API clients (extensions.code in GraphQL errors).
const (
	CodeInvalidRequest          = "invalid_request"
	CodeMissingRequiredField    = "missing_required_field"
	CodeInvalidFieldFormat      = "invalid_field_format"
	CodeResourceNotFound        = "resource_not_found"
	CodeServiceNotFound         = "service_not_found"
	CodeBookingNotFound         = "booking_not_found"
	CodeTimeSlotNotFound        = "time_slot_not_found"
	CodeTimeSlotFull            = "time_slot_full"
	CodeDuplicateBooking        = "duplicate_booking"
	CodeInvalidStatusTransition = "invalid_status_transition"
	CodeAPIKeyNotFound          = "api_key_not_found"
	CodeAccountNotFound         = "account_not_found"
	CodeWebhookNotFound         = "webhook_not_found"
)

// Error is a domain error: a stable machine-readable code, a message that says
// what was wrong, the input field it concerns (if any) and the HTTP status
// that describes it best.
type Error struct {
	Code    string
	Message string
	Field   string
	Status  int
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an Error with the status that matches its code.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...), Status: statusFor(code)}
}

// ErrorCode returns the code of a domain error, or "" for any other error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func statusFor(code string) int {
	switch code {
	case CodeResourceNotFound, CodeServiceNotFound, CodeBookingNotFound,
		CodeTimeSlotNotFound, CodeAPIKeyNotFound, CodeAccountNotFound, CodeWebhookNotFound:
		return http.StatusNotFound
	case CodeTimeSlotFull, CodeDuplicateBooking:
		return http.StatusConflict
	case CodeInvalidStatusTransition:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusBadRequest
	}
}
