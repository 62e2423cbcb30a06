ALTER TABLE "alerts" ADD COLUMN "fired_at" DATETIME;
ALTER TABLE "alerts" ADD COLUMN "min_value" FLOAT;
ALTER TABLE "alerts" ADD COLUMN "max_value" FLOAT;
