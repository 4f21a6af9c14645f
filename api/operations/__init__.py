"""Operations: ownership, the business calendar and alerts."""
