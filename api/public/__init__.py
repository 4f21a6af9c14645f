"""Pages an infringer opens from a link we sent: the notice and the payment details."""
