mod agreement;
mod units;
