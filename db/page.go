package db

// Page asks for up to First rows after a keyset position. List functions
// return up to First+1 rows so callers can tell whether there is a next page.
type Page struct {
	First   int
	AfterID int64
}
