//! Values every layer shares.
