"""Services: the operations of the API as plain classes and functions, with no HTTP in them."""
